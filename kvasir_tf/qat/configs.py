"""What of each kvasir_tf layer is quantized (TF-MOT ``QuantizeConfig``s)."""
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from kvasir_tf.preprocessing import PIXEL_MAX, PIXEL_MIN, PIXEL_SCALE, preprocess
from kvasir_tf.qat.quantizers import PACTOutputQuantizer, fixed_range


def _check_count(layer, kind, given, expected):
    """TF-MOT's own configs refuse a wrong count, naming the layer; so do ours."""
    if len(given) != len(expected):
        raise ValueError(f"`set_quantize_{kind}s` called on layer {layer.name} with {len(given)} "
                         f"{kind} parameters, but layer expects {len(expected)} values.")


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class PACTQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """PACT has no kernel to quantize; only its output, over its own learned range."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        _check_count(layer, "weight", quantize_weights, self.get_weights_and_quantizers(layer))

    def set_quantize_activations(self, layer, quantize_activations):
        _check_count(layer, "activation", quantize_activations,
                     self.get_activations_and_quantizers(layer))

    def get_output_quantizers(self, layer):
        return [PACTOutputQuantizer()]

    def get_config(self):
        return {}


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class PreprocessQuantizeConfig(PACTQuantizeConfig):
    """Both tensors of the pixel map (p * scale, then + offset) get the image of [0, 255] as a
    fixed range, so the int8 model does not depend on the calibration data's pixel range."""

    def get_activations_and_quantizers(self, layer):
        return [(layer.scale_activation, fixed_range(PIXEL_MIN * PIXEL_SCALE, PIXEL_MAX * PIXEL_SCALE))]

    def set_quantize_activations(self, layer, quantize_activations):
        super().set_quantize_activations(layer, quantize_activations)
        layer.scale_activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return [fixed_range(preprocess(PIXEL_MIN), preprocess(PIXEL_MAX))]
