"""The project's QAT scheme, shaped like TF-MOT's ``default_8bit/``.

``quantizers`` say how a tensor is fake-quantized (PACT's learned range, fixed pixel ranges),
``configs`` say what of a layer is quantized, ``layer_configs`` maps kvasir_tf's layers to their
configs, ``transforms`` adapt TF-MOT's layout transforms, ``quantize`` applies the scheme.
"""
from kvasir_tf.qat.quantize import (SCHEMES, apply_qat, custom_objects, is_qat_model,
                                    normalize_wrappers, pact_alphas, pact_layers)
from kvasir_tf.qat.quantizers import stock_gradients, twice_differentiable

__all__ = ["SCHEMES", "apply_qat", "custom_objects", "is_qat_model", "normalize_wrappers",
           "pact_alphas", "pact_layers", "stock_gradients", "twice_differentiable"]
