"""How tensors are fake-quantized: PACT's output over its learned [0, alpha], fixed pixel ranges,
and the gradient every fake quant of the QAT scheme uses.

The saliency L1 term of the paper's Algorithm 2 (``lambda2 * ||S||_1``, S = dCE/dX) is trained
by double backprop: the input gradient S is differentiated again with respect to the weights.
In a QAT model S passes backwards through every fake quant, i.e. through TensorFlow's
``FakeQuantWithMinMax*Gradient`` ops, which TensorFlow declares not differentiable: the outer
gradient silently drops every path through them (no error, a wrong gradient). Here each fake
quant keeps TensorFlow's own forward op (``tf.quantization.fake_quant_with_min_max_vars``,
``..._per_channel``, ``..._args``: the same values bit for bit, and the ops the TFLite
converter reads its int8 ranges from) and gets, through ``tf.custom_gradient``, the same
straight-through estimator as TensorFlow's gradient op, written as ``dy * inside`` with a
constant 0/1 mask taken from that op: its derivative with respect to ``dy`` is the mask, so a
second derivative exists. The first derivative is TensorFlow's gradient op itself (one fused
kernel for ``dy * inside`` and the two range sums); only a second derivative builds the masks.

TF-MOT's quantizers (``LastValueQuantizer`` per-channel for Conv/Depthwise kernels and
per-tensor for Dense, ``MovingAverageQuantizer`` and ``AllValuesQuantizer`` for activations,
``FixedQuantizer``) and the layout transforms that create them all reach TensorFlow's op
through two functions of ``quant_ops``: ``_FakeQuantWithMinMaxVars`` and ``FixedQuantize``.
TF-MOT's extension points cannot carry the gradient without that seam: a custom Quantizer,
QuantizeConfig or scheme would mean a parallel copy of every one of those quantizers, of the
default registry's configs and of the transforms that instantiate them, and QAT models saved
before (which name TF-MOT's classes) would load with TensorFlow's gradient again.

So the seam is explicit and scoped:

* :func:`install` (idempotent; called by :func:`twice_differentiable`, never at import) points
  the two ``quant_ops`` functions at dispatchers that call TF-MOT's own functions unchanged
  unless the caller asked for the twice-differentiable gradient;
* the choice is a :class:`contextvars.ContextVar` (per thread and task, not a process-global
  switch): :func:`twice_differentiable` turns it on inside a block, :func:`stock_gradients`
  off; the default is TensorFlow's gradient, so a plain TF-MOT model keeps it;
* :func:`twice_differentiable_steps` runs a model's train/test steps inside the block, which
  is how ``kvasir_tf.train`` asks for it (tf.distribute traces steps in replica threads, which
  do not inherit a context variable). First derivatives are TensorFlow's either way, so
  conversion, evaluation and saliency maps of a loaded QAT model do not depend on the choice.

A test pins the two names and their signatures.
"""
import contextlib
import contextvars
import functools

import tensorflow as tf
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops, quantizers

from kvasir_tf.pact import DEPLOY_BITS

_STOCK = {"_FakeQuantWithMinMaxVars": quant_ops._FakeQuantWithMinMaxVars,
          "FixedQuantize": quant_ops.FixedQuantize}
_TWICE_DIFFERENTIABLE = contextvars.ContextVar("kvasir_tf_twice_differentiable_fake_quant",
                                                default=False)


def is_twice_differentiable() -> bool:
    """Whether fake quants called here and now get the twice-differentiable gradient."""
    return _TWICE_DIFFERENTIABLE.get()


def _split_by_sign(x, inside):
    """(below, above) masks of the pixels outside the nudged range; TensorFlow nudges every
    range so that 0 is exactly representable, so an outside value is below it iff < 0."""
    outside = 1.0 - inside
    below = outside * tf.cast(x < 0.0, x.dtype)
    return below, outside - below


def fake_quant_vars(x, lo, hi, num_bits=DEPLOY_BITS, narrow_range=False, per_channel=False):
    """``tf.quantization.fake_quant_with_min_max_vars(_per_channel)`` with a twice-differentiable
    STE gradient (module docstring); ``lo``/``hi`` are scalars, or [channels] if per_channel."""
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


def _tfmot_fake_quant(inputs, min_var, max_var, per_channel, num_bits, narrow_range):
    """Stands in for ``quant_ops._FakeQuantWithMinMaxVars`` (same signature and checks); TF-MOT's
    own function unless :func:`twice_differentiable` is on."""
    if not is_twice_differentiable():
        return _STOCK["_FakeQuantWithMinMaxVars"](inputs, min_var, max_var, per_channel, num_bits,
                                                  narrow_range)
    if per_channel:
        assert len(min_var.get_shape()) == 1 and len(max_var.get_shape()) == 1
    else:
        assert min_var.get_shape() == [] and max_var.get_shape() == []  # noqa: PLC1901
    return fake_quant_vars(inputs, min_var, max_var, num_bits, narrow_range, per_channel)


def _tfmot_fixed_quantize(inputs, init_min=-6.0, init_max=6.0, scope=None, narrow_range=False):
    """Stands in for ``quant_ops.FixedQuantize`` (same signature, 8 bits as there)."""
    if not is_twice_differentiable():
        return _STOCK["FixedQuantize"](inputs, init_min, init_max, scope, narrow_range)
    with tf.name_scope(scope or "FixedQuantize"):
        return fake_quant_args(inputs, init_min, init_max, narrow_range=narrow_range)


def install():
    """Point TF-MOT's two fake-quant functions at the dispatchers above (idempotent). Outside
    :func:`twice_differentiable` they call TF-MOT's originals, so nothing else changes."""
    quant_ops._FakeQuantWithMinMaxVars = _tfmot_fake_quant
    quant_ops.FixedQuantize = _tfmot_fixed_quantize


@contextlib.contextmanager
def _gradient(twice: bool):
    token = _TWICE_DIFFERENTIABLE.set(twice)
    try:
        yield
    finally:
        _TWICE_DIFFERENTIABLE.reset(token)


def twice_differentiable():
    """Inside the block (this thread or task only), every fake quant -- TF-MOT's and ours --
    gets the twice-differentiable STE gradient; installs the seam on first use."""
    install()
    return _gradient(True)


def stock_gradients():
    """TensorFlow's own FakeQuant gradient ops inside the block (the default outside any block)."""
    return _gradient(False)


def twice_differentiable_steps(model):
    """Make ``model``'s train and test steps run inside :func:`twice_differentiable`.

    The steps are traced in tf.distribute's replica threads (one per device under
    MirroredStrategy), which do not see a context variable set around ``fit``; wrapping the
    step itself carries the choice into them. Idempotent."""
    install()
    for name in ("train_step", "test_step"):
        step = getattr(model, name)
        if getattr(step, "_kvasir_twice_differentiable", False):
            continue

        @functools.wraps(step)
        def scoped(data, _step=step):
            with _gradient(True):
                return _step(data)

        scoped._kvasir_twice_differentiable = True
        setattr(model, name, scoped)
    return model


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
        alpha = tf.convert_to_tensor(self._pact.alpha)
        return fake_quant_vars(inputs, tf.zeros_like(alpha), alpha, DEPLOY_BITS, narrow_range=False)

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
