"""Flat functional MobileNetV2 classifier with the pixel map inside and ReLU6 or PACT activations.

The model takes raw pixels (0..255) because its first layer is :class:`Preprocess`, so every
export (Keras, TFLite float/int8, TFLite Micro) takes camera pixels. It is one flat functional
graph -- no nested sub-model -- because TF-MOT's ``quantize_apply`` cannot wrap nested models.
"""
from pathlib import Path

import tensorflow as tf

from kvasir_tf import config as C
from kvasir_tf.errors import KvasirError
from kvasir_tf.pact import PACT
from kvasir_tf.preprocessing import PIXEL_OFFSET, PIXEL_SCALE

ACTIVATIONS = ("relu6", "pact")
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MIN_IMAGE_SIZE = 32


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class Preprocess(tf.keras.layers.Layer):
    """The pixel map :func:`~kvasir_tf.preprocessing.preprocess` as a layer of its own, so QAT
    can fix its ranges. It converts to two int8 ops (MUL, ADD); ``scale_activation`` is the
    hook QAT uses to fix the range of the tensor between them too (else the converter takes
    it from calibration data and clips pixels the calibration set did not contain)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale_activation = tf.keras.activations.linear

    def call(self, inputs):
        return self.scale_activation(tf.cast(inputs, tf.float32) * PIXEL_SCALE) + PIXEL_OFFSET

    def compute_output_shape(self, input_shape):
        return input_shape


def _is_relu6(layer) -> bool:
    return (isinstance(layer, tf.keras.layers.ReLU) and layer.max_value is not None
            and float(layer.max_value) == 6.0)


def _check_args(image_size, num_classes, alpha, weights, dropout, activation):
    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise KvasirError(f"image_size must be an integer >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise KvasirError(f"num_classes must be an integer >= 2, got {num_classes!r}: "
                          f"the dataset needs at least two class folders")
    if not alpha > 0:
        raise KvasirError(f"width multiplier alpha must be > 0, got {alpha!r}")
    if not 0.0 <= dropout < 1.0:
        raise KvasirError(f"dropout must be in [0, 1), got {dropout!r}")
    if activation not in ACTIVATIONS:
        raise KvasirError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if weights == "imagenet" and alpha not in IMAGENET_ALPHAS:
        raise KvasirError(f"ImageNet weights exist only for alpha in {IMAGENET_ALPHAS}, got {alpha}: "
                          f"pick one of those or use weights=None")
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise KvasirError(f"weights file {weights} not found: pass a MobileNetV2 (include_top=False) "
                          f"weights .h5 file, 'imagenet' or None")


# MobileNetV2's inverted-residual stages: (filters, stride of the first block, blocks).
_STAGES = ((24, 2, 2), (32, 2, 3), (64, 2, 4), (96, 1, 3), (160, 2, 3), (320, 1, 1))
EXPANSION = 6
EARLY_BLOCKS = (1, 2)   # the first expanding stage: block 1's expansion sets the 96 px arena peak


def _make_divisible(v, divisor=8):
    """Keras' channel rounding (tf_keras.applications.mobilenet_v2._make_divisible)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn(x, filters, name, bn_name, relu_name=None, kernel=1, stride=1, padding="same"):
    L = tf.keras.layers
    x = L.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.999, name=bn_name)(x)
    return L.ReLU(6.0, name=relu_name)(x) if relu_name else x


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    """Keras' block: 1x1 expand, 3x3 depthwise (explicit pad when strided), 1x1 project, add."""
    L = tf.keras.layers
    in_channels = inputs.shape[-1]
    out_channels = _make_divisible(int(filters * alpha))
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    x = inputs
    if block_id:
        x = _conv_bn(x, expansion * in_channels, prefix + "expand", prefix + "expand_BN", prefix + "expand_relu")
    if stride == 2:
        adjust = (1 - x.shape[1] % 2, 1 - x.shape[2] % 2)
        x = L.ZeroPadding2D(((1 - adjust[0], 1), (1 - adjust[1], 1)), name=prefix + "pad")(x)
    x = L.DepthwiseConv2D(3, strides=stride, use_bias=False, padding="same" if stride == 1 else "valid",
                          name=prefix + "depthwise")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.999, name=prefix + "depthwise_BN")(x)
    x = L.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    x = _conv_bn(x, out_channels, prefix + "project", prefix + "project_BN")
    if in_channels == out_channels and stride == 1:
        return L.Add(name=prefix + "add")([inputs, x])
    return x


def _slim_backbone(inputs, alpha, last_conv_channels, early_expansion):
    """Keras' MobileNetV2 layer for layer (same names, so PACT and QAT treat it alike) with the
    last 1x1 conv's width and the first expanding blocks' expansion as options: the two knobs
    that set a microcontroller's flash (the last conv) and RAM arena (the 48x48 expansion)."""
    x = _conv_bn(inputs, _make_divisible(32 * alpha), "Conv1", "bn_Conv1", "Conv1_relu", kernel=3, stride=2)
    x = _inverted_res_block(x, filters=16, alpha=alpha, stride=1, expansion=1, block_id=0)
    block = 1
    for filters, stride, count in _STAGES:
        for i in range(count):
            expansion = early_expansion if (early_expansion and block in EARLY_BLOCKS) else EXPANSION
            x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride if i == 0 else 1,
                                    expansion=expansion, block_id=block)
            block += 1
    return _conv_bn(x, last_conv_channels or 1280, "Conv_1", "Conv_1_bn", "out_relu")


def _backbone(inputs, alpha, weights):
    """Keras' MobileNetV2 built on ``inputs`` so the result shares our input (no nested model)."""
    try:
        return tf.keras.applications.MobileNetV2(
            input_tensor=inputs, include_top=False, alpha=alpha, weights=weights)
    except (ValueError, OSError) as exc:
        if weights in (None, "imagenet"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KvasirError(
            f"cannot load weights file {weights} into MobileNetV2(alpha={alpha}, include_top=False): "
            f"{first}; save it from a MobileNetV2 with the same alpha and include_top=False") from None


def build_mobilenetv2(image_size=224, num_classes=8, *, alpha=1.0, weights=None, dropout=C.DROPOUT,
                      activation="relu6", pact_bits=8, pact_alpha_init=C.PACT_ALPHA_INIT,
                      pact_eta=C.PACT_ETA, seed=None, last_conv_channels=None,
                      early_expansion=None) -> tf.keras.Model:
    """MobileNetV2 classifier on raw pixels [B, S, S, 3] -> softmax probabilities [B, num_classes].

    Keyword-only architecture options with defaults, as ``tf.keras.applications.MobileNetV2``
    takes them (the TrainConfig fields map onto them one to one).

    weights: None (random init), "imagenet" (downloads Keras' no-top file) or the path of a
    MobileNetV2 ``include_top=False`` weights file with the same ``alpha`` (offline use).
    activation="pact" replaces every ReLU6 with a PACT layer of the same name, so a ReLU6
    checkpoint maps onto it with :func:`copy_weights`. ``seed`` seeds Python, NumPy and
    TensorFlow globally (``tf.keras.utils.set_random_seed``) so the initial weights repeat.
    ``last_conv_channels`` (Keras: 1280) and ``early_expansion`` (of blocks 1-2; Keras: 6) slim
    the model for microcontrollers (``kvasir_tf.micro``); None keeps Keras' architecture.
    """
    _check_args(image_size, num_classes, alpha, weights, dropout, activation)
    slim = last_conv_channels is not None or early_expansion is not None
    for name, value in (("last_conv_channels", last_conv_channels), ("early_expansion", early_expansion)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise KvasirError(f"{name} must be a positive integer or None, got {value!r}")
    if slim and weights is not None:
        raise KvasirError("pretrained weights exist only for Keras' MobileNetV2: drop "
                          "last_conv_channels/early_expansion or use weights=None")
    if seed is not None:
        tf.keras.utils.set_random_seed(int(seed))
    pixels = tf.keras.Input(shape=(image_size, image_size, 3), dtype=tf.float32, name="pixels")
    x = Preprocess(name="preprocess")(pixels)
    if slim:
        x = _slim_backbone(x, alpha, last_conv_channels, early_expansion)
    else:
        x = _backbone(x, alpha, weights).output
    x = tf.keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = tf.keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    probs = tf.keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    model = tf.keras.Model(pixels, probs, name=f"mobilenetv2_{alpha:g}_{image_size}_{activation}")
    if activation == "pact":
        model = _swap_relu6_for_pact(model, pact_bits, pact_alpha_init, pact_eta)
    return model


def _swap_relu6_for_pact(model, bits, alpha_init, eta):
    def clone(layer):
        if _is_relu6(layer):
            return PACT(bits=bits, alpha_init=alpha_init, eta=eta, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    pact_model = tf.keras.models.clone_model(model, clone_function=clone)
    copied = copy_weights(model, pact_model)
    expected = sum(1 for layer in model.layers if layer.weights)
    assert copied == expected, (copied, expected)
    return pact_model


def copy_weights(src: tf.keras.Model, dst: tf.keras.Model) -> int:
    """Copy weights layer by layer, matched by name (e.g. a ReLU6 float checkpoint into a PACT
    model; PACT alphas keep their init). Returns how many layers were copied."""
    dst_layers = {layer.name: layer for layer in dst.layers}
    copied = 0
    for layer in src.layers:
        target = dst_layers.get(layer.name)
        if target is None or not layer.weights:
            continue
        src_w, dst_w = layer.get_weights(), target.get_weights()
        if [w.shape for w in src_w] != [w.shape for w in dst_w]:
            raise KvasirError(
                f"layer {layer.name}: weight shapes {[w.shape for w in src_w]} do not match "
                f"{[w.shape for w in dst_w]}: build both models with the same alpha and classes")
        target.set_weights(src_w)
        copied += 1
    return copied


def has_nested_model(model: tf.keras.Model) -> bool:
    """True if any layer is itself a Model (TF-MOT cannot quantize those)."""
    return any(isinstance(layer, tf.keras.Model) for layer in model.layers)
