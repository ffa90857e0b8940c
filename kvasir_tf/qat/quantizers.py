"""How tensors are fake-quantized: PACT's output over its learned [0, alpha], fixed pixel ranges."""
import tensorflow as tf
from tensorflow_model_optimization.python.core.quantization.keras import quantizers

from kvasir_tf.pact import DEPLOY_BITS


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class PACTOutputQuantizer(quantizers.Quantizer):
    """8-bit fake quant over [0, alpha] where alpha is the wrapped PACT layer's learned weight."""

    def build(self, tensor_shape, name, layer):
        # ``layer`` is the QuantizeWrapper, which has built the PACT layer it wraps. alpha is
        # kept here, not returned as a quantizer weight: the wrapper would then also list it as
        # its own weight, but only when built by quantize_apply, and .keras loading would break.
        self._pact = getattr(layer, "layer", layer)
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, 0.0, self._pact.alpha, num_bits=DEPLOY_BITS, narrow_range=False)

    def get_config(self):
        return {}

    def __eq__(self, other):
        return isinstance(other, PACTOutputQuantizer)

    def __ne__(self, other):
        return not self.__eq__(other)


def fixed_range(lo, hi) -> quantizers.FixedQuantizer:
    """An 8-bit fake quant over a range known in advance (not learned from data)."""
    return quantizers.FixedQuantizer(num_bits=DEPLOY_BITS, init_min=float(lo), init_max=float(hi),
                                     narrow_range=False)
