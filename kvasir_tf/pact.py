"""PACT: a ReLU with a learned clipping level alpha and k-bit quantized output (Choi et al. 2018).

Forward: ``y = round(clip(x, 0, alpha) * (2^k - 1) / alpha) * alpha / (2^k - 1)``.
The rounding is a straight-through estimator: dy/dx = 1 for 0 <= x <= alpha, else 0;
dy/dalpha = 1 where x > alpha, else 0 (the PACT paper's gradient, eq. 3, which gives the single
point x = alpha exactly to alpha instead of to x; a continuous pre-activation never sits on it).

The forward is built from TensorFlow's 8-bit ``FakeQuantWithMinMaxVars`` op, which the TFLite
converter turns into plain int8 tensors: one fake quant over [0, alpha] (min exactly 0 gives zero
point exactly 0, so it is the formula above for k = 8); Conv + BN + PACT then convert to one int8
op whose output has scale alpha/255, zero point -128 and no clip op. For k < 8 a second 8-bit
fake quant over [0, alpha * 255 / (2^k - 1)] (step alpha / (2^k - 1)) rounds onto the k-bit grid:
exactly the formula for k in {2, 4} (2^k - 1 divides 255), within alpha/510 otherwise, and always
exactly 2^k levels. Deployment stays int8: the converter folds that second fake quant into the
first, so an exported k < 8 model keeps the learned range [0, alpha] on the finer 8-bit grid
(a 4-bit FakeQuant op, the obvious alternative, does not convert to int8 at all).
The gradient is TensorFlow's fused fake-quant gradient op (one kernel for dx and the alpha sum,
where a hand-written ``dy * (0 <= x < alpha)`` and ``sum(dy * (x >= alpha))`` took seven ops per
layer and a fifth of a PACT-QAT training step); the fake quant is :mod:`kvasir_tf.fake_quant`'s,
so double backprop -- needed by the saliency L1 term -- works inside its twice-differentiable block,
which the saliency-guided step enters when that term is on.

alpha is kept positive by a weight constraint (``MinValue(ALPHA_MIN)``, applied by every Keras
optimizer after each update; no softplus reparametrisation, so alpha is the clipping level
itself and its gradient is the paper's). Its L2 penalty ``eta * alpha^2`` is the weight's
regularizer, which Keras adds to ``layer.losses`` through ``add_loss``. Under Adam, eta sets
where the clipping gradient and the penalty balance, not how fast alpha moves (about its
learning rate per step), so training gives the alphas their own rate (``TrainConfig.alpha_lr_ratio``)
and, fine-tuning from a float run, starts them at their layer's activation percentile
(:mod:`kvasir_tf.alpha_init`) instead of ``alpha_init`` (ReLU6's 6), which clips almost nothing.
"""
import tensorflow as tf

from kvasir_tf.errors import KvasirError
from kvasir_tf.fake_quant import DEPLOY_BITS, fake_quant_vars

# Smallest clipping level alpha may take; a run whose alphas sit here has collapsed.
ALPHA_MIN = 1e-2
DEFAULT_BITS = 8
MIN_BITS, MAX_BITS = 2, DEPLOY_BITS


def check_bits(bits) -> int:
    """Validate an activation bit width, naming the fix instead of failing inside TensorFlow."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise KvasirError(
            f"PACT bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}: "
            f"pass e.g. --bits 8 or --bits 4")
    return bits


def pact_quantize(x, alpha, bits: int = DEFAULT_BITS):
    """PACT forward with the STE gradients of the paper; ``alpha`` is a scalar tensor."""
    bits = check_bits(bits)
    x = tf.convert_to_tensor(x, tf.float32)
    alpha = tf.convert_to_tensor(alpha, tf.float32)
    zero = tf.zeros_like(alpha)   # a constant: the op's gradient for it reaches nothing
    y = fake_quant_vars(x, zero, alpha, DEPLOY_BITS)
    if bits < DEPLOY_BITS:  # a range that makes the 8-bit step alpha / (2^k - 1); y is inside
        # it, so its gradient passes dy on and adds nothing to alpha's
        y = fake_quant_vars(y, zero, alpha * ((2 ** DEPLOY_BITS - 1) / (2 ** bits - 1)), DEPLOY_BITS)
    return y


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class MinValue(tf.keras.constraints.Constraint):
    """Keeps a weight >= min_value (alpha must stay positive for the quantizer scale)."""

    def __init__(self, min_value=ALPHA_MIN):
        self.min_value = float(min_value)

    def __call__(self, w):
        return tf.maximum(w, tf.cast(self.min_value, w.dtype))

    def get_config(self):
        return {"min_value": self.min_value}


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class PACT(tf.keras.layers.Layer):
    """Learned-range clipped activation, quantized to ``bits`` bits; replaces ReLU6."""

    def __init__(self, bits=DEFAULT_BITS, alpha_init=6.0, eta=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.bits = check_bits(bits)
        if not float(alpha_init) > ALPHA_MIN:
            raise KvasirError(f"PACT alpha_init must be > {ALPHA_MIN}, got {alpha_init!r}: "
                              f"use the ReLU6 level 6.0")
        if float(eta) < 0:
            raise KvasirError(f"PACT eta (alpha L2 penalty) must be >= 0, got {eta!r}")
        self.alpha_init = float(alpha_init)
        self.eta = float(eta)

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha", shape=(), dtype=tf.float32,
            initializer=tf.keras.initializers.Constant(self.alpha_init),
            regularizer=tf.keras.regularizers.L2(self.eta) if self.eta > 0 else None,
            constraint=MinValue(ALPHA_MIN), trainable=True)
        super().build(input_shape)

    def build_from_config(self, config):
        """Build on first call, like Keras' built-in layers do when wrapped: a QuantizeWrapper
        lists its layer's weights as its own only if the layer is already built, and .keras
        files store that list by position, so an early build would break QAT model loading."""

    def call(self, inputs):
        return pact_quantize(inputs, self.alpha, self.bits)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(bits=self.bits, alpha_init=self.alpha_init, eta=self.eta)
        return config
