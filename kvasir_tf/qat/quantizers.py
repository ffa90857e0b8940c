"""How tensors are fake-quantized in the QAT scheme: PACT's output over its learned [0, alpha],
fixed pixel ranges, and which gradient TF-MOT's own fake quants use.

Every fake quant of the scheme -- TF-MOT's weight and activation quantizers, PACT's output, the
fixed input range -- gets the twice-differentiable gradient of :mod:`kvasir_tf.fake_quant` inside
:func:`twice_differentiable` (the saliency L1 term's double backprop needs it), TensorFlow's
outside. TF-MOT's quantizers (``LastValueQuantizer`` per-channel for Conv/Depthwise kernels and
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
* the choice is :mod:`kvasir_tf.fake_quant`'s context variable (per thread and task, not a
  process-global switch): :func:`twice_differentiable` turns it on inside a block,
  :func:`stock_gradients` off; the default is TensorFlow's gradient, so a plain TF-MOT model
  keeps it;
* who asks is :class:`kvasir_tf.saliency_training.SaliencyGuidedModel`, whose every train and
  test step runs inside the block (the step itself, so tf.distribute's replica threads, which
  do not inherit a context variable set around ``fit``, see it too). First derivatives are
  TensorFlow's either way, so conversion, evaluation and saliency maps of a loaded QAT model
  do not depend on the choice.

A test pins the two names and their signatures.
"""
import tensorflow as tf
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops, quantizers

from kvasir_tf.fake_quant import (DEPLOY_BITS, fake_quant_args, fake_quant_vars,
                                  is_twice_differentiable, twice_differentiable_block)

_STOCK = {"_FakeQuantWithMinMaxVars": quant_ops._FakeQuantWithMinMaxVars,
          "FixedQuantize": quant_ops.FixedQuantize}


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


def twice_differentiable():
    """Inside the block (this thread or task only), every fake quant -- TF-MOT's and ours --
    gets the twice-differentiable STE gradient; installs the seam on first use."""
    install()
    return twice_differentiable_block(True)


def stock_gradients():
    """TensorFlow's own FakeQuant gradient ops inside the block (the default outside any block)."""
    return twice_differentiable_block(False)


@tf.keras.utils.register_keras_serializable(package="kvasir_tf")
class PACTOutputQuantizer(quantizers.Quantizer):
    """8-bit fake quant over [0, alpha] where alpha is the wrapped PACT layer's learned weight.

    At 8 bits the PACT layer's output already is that fake quant (the same op over the same
    range, :func:`kvasir_tf.pact.pact_quantize`), so the quantizer adds no op: a second one would
    give the same values (it rounds grid points to themselves) and a gradient that passes dy on
    and adds 0 to alpha's, at the cost of a forward and a backward kernel per layer and pass.
    Below 8 bits it rounds the k-bit grid onto [0, alpha]'s 8-bit grid, which the converter reads.
    """

    def build(self, tensor_shape, name, layer):
        # ``layer`` is the QuantizeWrapper, which has built the PACT layer it wraps. alpha is
        # kept here, not returned as a quantizer weight: the wrapper would then also list it as
        # its own weight, but only when built by quantize_apply, and .keras loading would break.
        self._pact = getattr(layer, "layer", layer)
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        if self._pact.bits == DEPLOY_BITS:
            return inputs
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
