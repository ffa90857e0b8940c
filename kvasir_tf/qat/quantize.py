"""Apply the QAT scheme to a float model: stock TF-MOT 8-bit, or PACT with learned ranges.

PACT plugs in as one config + one quantizer: the output of every PACT layer is fake-quantized
8-bit over ``[0, layer.alpha]`` with the layer's own learned alpha; see :mod:`.transforms` for
the layout changes that make the int8 model's input ``q = p - 128`` whatever the data.
"""
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper
from tensorflow_model_optimization.python.core.quantization.keras import quantizers
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs as configs8)

from kvasir_tf.errors import KvasirError
from kvasir_tf.model import Preprocess, has_nested_model
from kvasir_tf.pact import PACT, MinValue
from kvasir_tf.qat import layer_configs
from kvasir_tf.qat.configs import PACTQuantizeConfig, PreprocessQuantizeConfig
from kvasir_tf.qat.quantizers import PACTOutputQuantizer
from kvasir_tf.qat.transforms import KvasirQuantizeScheme

SCHEMES = ("default", "pact")


def custom_objects() -> dict:
    """Everything needed to deserialize float, PACT and QAT-wrapped kvasir_tf models."""
    return {
        "PACT": PACT, "MinValue": MinValue, "Preprocess": Preprocess,
        "PACTOutputQuantizer": PACTOutputQuantizer, "PACTQuantizeConfig": PACTQuantizeConfig,
        "PreprocessQuantizeConfig": PreprocessQuantizeConfig,
        "FixedQuantizer": quantizers.FixedQuantizer,
        "NoOpQuantizeConfig": configs8.NoOpQuantizeConfig,
    }


def _iter_layers(model):
    """All layers in graph order, looking inside QAT wrappers and wrapper models."""
    for layer in getattr(model, "layers", []):
        yield layer
        inner = getattr(layer, "layer", None)
        if inner is not None:
            yield inner
        if isinstance(layer, tf.keras.Model):
            yield from _iter_layers(layer)  # e.g. SaliencyGuidedModel(.model)


def pact_layers(model) -> list:
    return [layer for layer in _iter_layers(model) if isinstance(layer, PACT)]


def pact_alphas(model) -> list:
    """The learned clipping levels (tf.Variable), float or QAT-wrapped model alike."""
    return [layer.alpha for layer in pact_layers(model)]


def is_qat_model(model) -> bool:
    return any(isinstance(layer, quantize_wrapper.QuantizeWrapper) for layer in model.layers)


def _check_applicable(model, scheme):
    if scheme not in SCHEMES:
        raise KvasirError(f"unknown QAT scheme {scheme!r}: use one of {SCHEMES}")
    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise KvasirError("apply_qat needs a functional Keras model (e.g. build_mobilenetv2(...))")
    if has_nested_model(model):
        raise KvasirError("apply_qat: the model contains a nested sub-model, which TF-MOT cannot "
                          "quantize: build it with kvasir_tf.model.build_mobilenetv2 (flat)")
    if is_qat_model(model):
        raise KvasirError("apply_qat: the model is already QAT-wrapped; pass the float model")
    n_pact = len(pact_layers(model))
    if scheme == "pact" and n_pact == 0:
        raise KvasirError("scheme 'pact' needs a model with PACT layers: "
                          "build_mobilenetv2(..., activation='pact')")
    if scheme == "default" and n_pact:
        raise KvasirError("scheme 'default' is stock QAT for ReLU6 models but this model has "
                          f"{n_pact} PACT layers: use scheme='pact'")


def apply_qat(model: tf.keras.Model, scheme: str = "default") -> tf.keras.Model:
    """Wrap a float model for QAT: "default" = stock TF-MOT 8-bit (ReLU6 model),
    "pact" = same, with PACT outputs fake-quantized over their learned alpha.

    The fake quants have TensorFlow's gradient; a second derivative through them (the saliency
    L1 term) needs ``with twice_differentiable():``, which ``SaliencyGuidedModel``'s steps enter."""
    _check_applicable(model, scheme)

    def annotate(layer):
        config = layer_configs.config_for(layer)
        if config is not None:
            return tfmot.quantization.keras.quantize_annotate_layer(layer, config)
        return layer  # the original object, so its weights travel along

    with tfmot.quantization.keras.quantize_scope(custom_objects()):
        annotated = tf.keras.models.clone_model(model, clone_function=annotate)
        annotated = tfmot.quantization.keras.quantize_annotate_model(annotated)
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme=KvasirQuantizeScheme())
    normalize_wrappers(qat)
    return qat


def normalize_wrappers(model):
    """Give every QuantizeWrapper the variable list a freshly loaded one has.

    QuantizeWrapperV2.build lists the wrapped layer's weights in its own ``_trainable_weights``
    only if that layer was already built -- true after ``quantize_apply``, false when loading.
    The .keras format stores that list by position, so without this a QAT model fails to
    load ("expected 1 variables, but received 3"). Only the quantized kernels remain listed;
    ``trainable_weights`` is unchanged as a set.
    """
    for layer in _iter_layers(model):
        if isinstance(layer, quantize_wrapper.QuantizeWrapper):
            layer._trainable_weights = [weight for weight, _, _ in layer._weight_vars]
