"""TF-MOT's default 8-bit layout transforms with two changes for the int8 model the devices run.

1. The model input is fake-quantized over the fixed pixel range [0, 255] instead of a range
   learned from data, so the int8 input map is always ``q = p - 128``.
2. Conv/Depthwise + BN + PACT gets no fake quant before PACT (as TF-MOT does for Conv + BN +
   ReLU), so the converter folds the three into one int8 op whose output range is [0, alpha].

``TFMOT_TRANSFORMS`` is TF-MOT's list, in its order; a test fails when TF-MOT's list changes.
"""
from tensorflow_model_optimization.python.core.quantization.keras import quantize_aware_activation
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer
from tensorflow_model_optimization.python.core.quantization.keras import quantizers
from tensorflow_model_optimization.python.core.quantization.keras import utils as quantize_utils
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs as configs8, default_8bit_quantize_layout_transform as layout8,
    default_8bit_quantize_scheme as scheme8, default_8bit_transforms as transforms8)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
    model_transformer)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations.transforms import (
    LayerNode, LayerPattern)

from kvasir_tf.preprocessing import PIXEL_MAX, PIXEL_MIN
from kvasir_tf.qat.quantizers import fixed_range

TFMOT_TRANSFORMS = (
    "InputLayerQuantize", "SeparableConv1DQuantize", "SeparableConvQuantize",
    "Conv2DReshapeBatchNormReLUQuantize", "Conv2DReshapeBatchNormActivationQuantize",
    "Conv2DBatchNormReLUQuantize", "Conv2DBatchNormActivationQuantize",
    "Conv2DReshapeBatchNormQuantize", "Conv2DBatchNormQuantize",
    "ConcatTransform6Inputs", "ConcatTransform5Inputs", "ConcatTransform4Inputs",
    "ConcatTransform3Inputs", "ConcatTransform",
    "DenseBatchNormQuantize", "DenseBatchNormReLUQuantize", "DenseBatchNormActivationQuantize",
    "LayerReLUQuantize", "LayerReluActivationQuantize",
)


class FixedRangeInputLayerQuantize(transforms8.InputLayerQuantize):
    """InputLayer -> QuantizeLayer over the fixed pixel range (TF-MOT learns it from data)."""

    def replacement(self, match_layer):
        quant_layer = quantize_layer.QuantizeLayer(fixed_range(PIXEL_MIN, PIXEL_MAX))
        layer_config = quantize_utils.serialize_layer(quant_layer, use_legacy_format=True)
        layer_config["name"] = quant_layer.name
        return LayerNode(layer_config, input_layers=[match_layer])

    def custom_objects(self):
        return {**super().custom_objects(), "FixedQuantizer": quantizers.FixedQuantizer}


class ConvBatchNormPACTQuantize(transforms8.Conv2DBatchNormReLUQuantize):
    """Conv/Depthwise + BN + PACT: no fake quant before PACT, so TFLite fuses them into one op."""

    def pattern(self):
        return LayerPattern("PACT|kvasir_tf>PACT",
                            inputs=[transforms8.Conv2DBatchNormQuantize.pattern(self)])

    def replacement(self, match_layer):
        bn_node = match_layer.input_layers[0]
        conv_node = bn_node.input_layers[0]
        if transforms8._has_custom_quantize_config(bn_node, conv_node):
            return match_layer
        conv_node.layer["config"]["activation"] = quantize_utils.serialize_activation(
            quantize_aware_activation.NoOpActivation(), use_legacy_format=True)
        bn_node.metadata["quantize_config"] = configs8.NoOpQuantizeConfig()
        return match_layer


# Our transforms by the TF-MOT transform they replace or precede (PACT before Conv+BN alone).
REPLACED = {"InputLayerQuantize": [FixedRangeInputLayerQuantize]}
BEFORE = {"Conv2DReshapeBatchNormQuantize": [ConvBatchNormPACTQuantize]}


def layout_transforms() -> list:
    """TF-MOT's transforms in TF-MOT's order, with ours replacing or inserted as above."""
    out = []
    for name in TFMOT_TRANSFORMS:
        out += [cls() for cls in BEFORE.get(name, [])]
        out += [cls() for cls in REPLACED.get(name, [getattr(transforms8, name)])]
    return out


class LayoutTransform(layout8.Default8BitQuantizeLayoutTransform):
    def apply(self, model, layer_quantize_map):
        return model_transformer.ModelTransformer(
            model, layout_transforms(), set(layer_quantize_map.keys()), layer_quantize_map).transform()


class KvasirQuantizeScheme(scheme8.Default8BitQuantizeScheme):
    """Default 8-bit registry; layout with fixed input range and Conv+BN+PACT fusion.

    The fake quants it creates use TensorFlow's gradient, whose second derivative drops every
    path through them; saliency-guided training needs one, and gets it only inside
    ``quantizers.twice_differentiable()`` (``kvasir_tf.train`` wraps its steps so). Nothing is
    patched at import."""

    def get_layout_transformer(self):
        return LayoutTransform()
