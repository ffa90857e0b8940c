"""TensorFlow's fake-quant ops, with a second derivative when a caller asks for one.

The saliency L1 term of the paper's Algorithm 2 (``lambda2 * ||S||_1``, S = dCE/dX) is trained
by double backprop: S is differentiated again with respect to the weights, so it passes
backwards through every fake quant twice. TensorFlow declares its ``FakeQuantWithMinMax*Gradient``
ops not differentiable: the outer gradient silently drops every path through them (no error, a
wrong gradient). The functions here keep TensorFlow's forward op (the same values bit for bit,
and the op the TFLite converter reads its int8 range from) and, inside
:func:`twice_differentiable_block`, give it through ``tf.custom_gradient`` the same
straight-through estimator as TensorFlow's gradient op: the first derivative is that op itself
(one fused kernel for ``dy * inside`` and the two range sums), and its derivative with respect to
``dy`` is the 0/1 masks, so a second derivative exists. Outside the block the functions are
TensorFlow's ops with TensorFlow's gradient, the cheapest first derivative.

The choice is a :class:`contextvars.ContextVar` (per thread and task), off by default. PACT
(:mod:`kvasir_tf.pact`) and the QAT scheme's quantizers (:mod:`kvasir_tf.qat.quantizers`, which
also routes TF-MOT's own fake quants here) both use these functions.
"""
import contextlib
import contextvars

import tensorflow as tf

DEPLOY_BITS = 8  # every exported tensor is int8

_TWICE_DIFFERENTIABLE = contextvars.ContextVar("kvasir_tf_twice_differentiable_fake_quant",
                                                default=False)


def is_twice_differentiable() -> bool:
    """Whether fake quants called here and now get the twice-differentiable gradient."""
    return _TWICE_DIFFERENTIABLE.get()


@contextlib.contextmanager
def twice_differentiable_block(twice: bool = True):
    """Fake quants built inside the block (this thread or task only) get the twice-differentiable
    gradient (``twice=True``) or TensorFlow's (``twice=False``)."""
    token = _TWICE_DIFFERENTIABLE.set(twice)
    try:
        yield
    finally:
        _TWICE_DIFFERENTIABLE.reset(token)


def _split_by_sign(x, inside):
    """(below, above) masks of the pixels outside the nudged range; TensorFlow nudges every
    range so that 0 is exactly representable, so an outside value is below it iff < 0."""
    outside = 1.0 - inside
    below = outside * tf.cast(x < 0.0, x.dtype)
    return below, outside - below


def fake_quant_vars(x, lo, hi, num_bits=DEPLOY_BITS, narrow_range=False, per_channel=False):
    """``tf.quantization.fake_quant_with_min_max_vars(_per_channel)`` with a twice-differentiable
    STE gradient inside the block; ``lo``/``hi`` are scalars, or [channels] if per_channel."""
    fq = (tf.quantization.fake_quant_with_min_max_vars_per_channel if per_channel
          else tf.quantization.fake_quant_with_min_max_vars)
    x, lo, hi = (tf.convert_to_tensor(v, tf.float32) for v in (x, lo, hi))
    if not is_twice_differentiable():
        return fq(x, lo, hi, num_bits=num_bits, narrow_range=narrow_range)
    stock_grad = (tf.quantization.fake_quant_with_min_max_vars_per_channel_gradient if per_channel
                  else tf.quantization.fake_quant_with_min_max_vars_gradient)

    kw = dict(num_bits=num_bits, narrow_range=narrow_range)

    @tf.custom_gradient
    def _ste(dy, x, lo, hi):
        """TensorFlow's gradient op, one fused kernel: (dy * inside, sum(dy * below),
        sum(dy * above)); linear in dy, so its own derivative is the masks (double backprop)."""

        def grad(d_dx, d_dlo, d_dhi):
            inside = stock_grad(tf.ones_like(x), x, lo, hi, **kw)[0]
            below, above = _split_by_sign(x, inside)
            d_dy = d_dx * inside
            for d, mask in ((d_dlo, below), (d_dhi, above)):
                if d is not None:
                    d_dy += d * mask   # per channel: [C] broadcasts over the last axis
            return d_dy, None, None, None   # the masks are piecewise constant in x, lo, hi

        return stock_grad(dy, x, lo, hi, **kw), grad

    @tf.custom_gradient
    def _fq(x, lo, hi):
        y = fq(x, lo, hi, **kw)

        def grad(dy):
            return _ste(dy, x, lo, hi)

        return y, grad

    return _fq(x, lo, hi)


def fake_quant_args(x, lo, hi, num_bits=DEPLOY_BITS, narrow_range=False):
    """``tf.quantization.fake_quant_with_min_max_args`` (a fixed range) with the same gradient."""
    x = tf.convert_to_tensor(x, tf.float32)
    kw = dict(min=float(lo), max=float(hi), num_bits=num_bits, narrow_range=narrow_range)
    if not is_twice_differentiable():
        return tf.quantization.fake_quant_with_min_max_args(x, **kw)

    @tf.custom_gradient
    def _fq(x):
        y = tf.quantization.fake_quant_with_min_max_args(x, **kw)

        def grad(dy):
            return dy * tf.stop_gradient(
                tf.quantization.fake_quant_with_min_max_args_gradient(tf.ones_like(x), x, **kw))

        return y, grad

    return _fq(x)
