"""Quantization-aware training with TF-MOT: stock 8-bit QAT, or PACT with learned ranges.

TF-MOT splits *what* to quantize (a ``QuantizeConfig`` per layer) from *how* (a ``Quantizer``).
PACT plugs in as one config + one quantizer: the output of every PACT layer is fake-quantized
8-bit over ``[0, layer.alpha]`` with the layer's own learned alpha, and the Conv/Depthwise + BN
feeding it gets no quantizer of its own (as TF-MOT does for Conv + BN + ReLU), so the
TFLite converter folds Conv + BN + PACT into one int8 op whose output has scale alpha/255,
zero point -128: the clip is the int8 saturation, not a separate op.

Both schemes use one layout change to TF-MOT's default: the model input is fake-quantized over
the fixed pixel range [0, 255] (instead of a range learned from the data) and the
:class:`~kvasir_tf.model.Preprocess` output over its image [-1, 1], so the int8 model's input
is ``q = p - 128`` whatever the calibration data (see :mod:`kvasir_tf.preprocessing`).
"""
from pathlib import Path

import kvasir_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper
from tensorflow_model_optimization.python.core.quantization.keras import quantizers
from tensorflow_model_optimization.python.core.quantization.keras import utils as quantize_utils
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs as configs8, default_8bit_quantize_layout_transform as layout8,
    default_8bit_quantize_scheme as scheme8, default_8bit_transforms as transforms8)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
    model_transformer)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations.transforms import (  # noqa: E501
    LayerNode, LayerPattern)
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_aware_activation)

from kvasir_tf.errors import KvasirError
from kvasir_tf.model import Preprocess, has_nested_model
from kvasir_tf.pact import DEPLOY_BITS, PACT, MinValue
from kvasir_tf.preprocessing import PIXEL_MAX, PIXEL_MIN, PIXEL_SCALE, preprocess

SCHEMES = ("default", "pact")


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


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class PACTQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """PACT has no kernel to quantize; only its output, over its own learned range."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [PACTOutputQuantizer()]

    def get_config(self):
        return {}


def _fixed(lo, hi):
    return quantizers.FixedQuantizer(num_bits=DEPLOY_BITS, init_min=float(lo), init_max=float(hi),
                                     narrow_range=False)


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class PreprocessQuantizeConfig(PACTQuantizeConfig):
    """Both tensors of the pixel map (p * scale, then + offset) get the image of [0, 255] as a
    fixed range, so the int8 model does not depend on the calibration data's pixel range."""

    def get_activations_and_quantizers(self, layer):
        return [(layer.scale_activation, _fixed(PIXEL_MIN * PIXEL_SCALE, PIXEL_MAX * PIXEL_SCALE))]

    def set_quantize_activations(self, layer, quantize_activations):
        layer.scale_activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return [_fixed(preprocess(PIXEL_MIN), preprocess(PIXEL_MAX))]


class _FixedRangeInputLayerQuantize(transforms8.InputLayerQuantize):
    """InputLayer -> QuantizeLayer over the fixed pixel range (TF-MOT learns it from data)."""

    def replacement(self, match_layer):
        quant_layer = quantize_layer.QuantizeLayer(_fixed(PIXEL_MIN, PIXEL_MAX))
        layer_config = quantize_utils.serialize_layer(quant_layer, use_legacy_format=True)
        layer_config["name"] = quant_layer.name
        return LayerNode(layer_config, input_layers=[match_layer])

    def custom_objects(self):
        return {**super().custom_objects(), "FixedQuantizer": quantizers.FixedQuantizer}


class _ConvBatchNormPACTQuantize(transforms8.Conv2DBatchNormReLUQuantize):
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


class _LayoutTransform(layout8.Default8BitQuantizeLayoutTransform):
    """TF-MOT's default 8-bit transforms (same order) with the two changes above."""

    def apply(self, model, layer_quantize_map):
        transforms = [
            _FixedRangeInputLayerQuantize(),
            transforms8.SeparableConv1DQuantize(),
            transforms8.SeparableConvQuantize(),
            transforms8.Conv2DReshapeBatchNormReLUQuantize(),
            transforms8.Conv2DReshapeBatchNormActivationQuantize(),
            transforms8.Conv2DBatchNormReLUQuantize(),
            transforms8.Conv2DBatchNormActivationQuantize(),
            _ConvBatchNormPACTQuantize(),
            transforms8.Conv2DReshapeBatchNormQuantize(),
            transforms8.Conv2DBatchNormQuantize(),
            transforms8.ConcatTransform6Inputs(),
            transforms8.ConcatTransform5Inputs(),
            transforms8.ConcatTransform4Inputs(),
            transforms8.ConcatTransform3Inputs(),
            transforms8.ConcatTransform(),
            transforms8.DenseBatchNormQuantize(),
            transforms8.DenseBatchNormReLUQuantize(),
            transforms8.DenseBatchNormActivationQuantize(),
            transforms8.LayerReLUQuantize(),
            transforms8.LayerReluActivationQuantize(),
        ]
        return model_transformer.ModelTransformer(
            model, transforms, set(layer_quantize_map.keys()), layer_quantize_map).transform()


class KvasirQuantizeScheme(scheme8.Default8BitQuantizeScheme):
    """Default 8-bit registry; layout with fixed input range and Conv+BN+PACT fusion."""

    def get_layout_transformer(self):
        return _LayoutTransform()


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


def apply_qat(model: tf.keras.Model, scheme: str = "default") -> tf.keras.Model:
    """Wrap a float model for QAT: "default" = stock TF-MOT 8-bit (ReLU6 model),
    "pact" = same, with PACT outputs fake-quantized over their learned alpha."""
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

    def annotate(layer):
        if isinstance(layer, PACT):
            return tfmot.quantization.keras.quantize_annotate_layer(layer, PACTQuantizeConfig())
        if isinstance(layer, Preprocess):
            return tfmot.quantization.keras.quantize_annotate_layer(layer, PreprocessQuantizeConfig())
        return layer  # the original object, so its weights travel along

    with tfmot.quantization.keras.quantize_scope(custom_objects()):
        annotated = tf.keras.models.clone_model(model, clone_function=annotate)
        annotated = tfmot.quantization.keras.quantize_annotate_model(annotated)
        qat = tfmot.quantization.keras.quantize_apply(annotated, scheme=KvasirQuantizeScheme())
    _normalize_wrappers(qat)
    return qat


def _normalize_wrappers(model):
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


def save_model(model: tf.keras.Model, path) -> Path:
    """Save a float, PACT or QAT model (format from the suffix: .keras or .h5).

    The optimizer state goes along when the model is compiled; resumable runs keep their own
    ``tf.train.Checkpoint`` too."""
    path = Path(path)
    if path.suffix not in (".keras", ".h5"):
        raise KvasirError(f"cannot save model to {path}: use a .keras (or .h5) file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    _normalize_wrappers(model)
    model.save(str(path))
    return path


def load_model(path, compile: bool = False) -> tf.keras.Model:
    """Load any model saved by :func:`save_model` (QAT wrappers need TF-MOT's quantize_scope)."""
    path = Path(path)
    if not path.exists():
        raise KvasirError(f"model file {path} not found: pass a .keras file written by training "
                          f"(runs/NAME/checkpoints/best.keras)")
    try:
        with tfmot.quantization.keras.quantize_scope(custom_objects()):
            return tf.keras.models.load_model(str(path), custom_objects=custom_objects(),
                                              compile=compile)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise KvasirError(f"cannot load model {path}: {first}; "
                          f"re-export it with kvasir_tf.quantization.save_model") from None
