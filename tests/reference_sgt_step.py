"""The saliency-guided step and STE gradients as they were before they were made cheaper
(commits a01c086 and beb07e7), kept only so a test can show the cheaper versions train to the
same weights.

``ReferenceSaliencyGuidedModel`` is :class:`SaliencyGuidedModel` with the old guided step (mask
threshold from a full sort of the keys); :func:`old_gradients` routes the fake quants through
the old plain-op gradient (``dy * mask``, sums of masked products); :func:`old_pact` gives PACT
its old hand-written gradient and the QAT model its second fake quant after every PACT layer.
"""
import contextlib

import tensorflow as tf

from kvasir_tf import pact
from kvasir_tf.fake_quant import _split_by_sign
from kvasir_tf.qat import quantizers as qz
from kvasir_tf.saliency_training import SaliencyGuidedModel


class ReferenceSaliencyGuidedModel(SaliencyGuidedModel):

    def _ranked(self, rows, k):
        bits = tf.cast(tf.bitcast(rows, tf.int32), tf.int64)
        noise = self.rng.uniform_full_int(tf.shape(rows), tf.int64) & 0xFFFFFFFF
        keys = bits * (1 << 32) + noise
        ordered = tf.sort(keys, axis=-1)
        kth = ordered[:, tf.maximum(k - 1, 0)][:, None]
        mask = tf.logical_and(keys <= kth, k > 0)
        eps = tf.bitcast(tf.cast(kth[:, 0] // (1 << 32), tf.int32), tf.float32)
        return mask, eps

    def _train_step(self, data):   # inside the parent's fake-quant gradient block
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, tf.float32)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.trainable_variables
        state = self.model.non_trainable_variables
        with tf.GradientTape() as tape:
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:
                input_tape.watch(x)
                y_pred = self.model(x, training=True)
                ce_scaled = self.compiled_loss(y, y_pred, sample_weight)
            global_batch = tf.cast(tf.shape(x)[0] * replicas, tf.float32)
            if self.lambda2 > 0:
                grad = input_tape.gradient(ce_scaled, x) * global_batch
            else:
                with tape.stop_recording():
                    grad = input_tape.gradient(ce_scaled, x) * global_batch
            s = self._reduce_saliency(grad)
            x_masked, mask, eps = self._mask(tf.stop_gradient(x), tf.stop_gradient(s))
            post_clean = [tf.identity(v) for v in state]
            y_masked = self.model(x_masked, training=True)
            with tape.stop_recording():
                for v, value in zip(state, post_clean):
                    v.assign(value)
            kl_per = self._kl(y_pred, y_masked)
            l1_per = tf.reduce_mean(s, axis=[1, 2])
            reg = self._regularization()
            total = (ce_scaled + reg / replicas
                     + self.lambda1 * tf.nn.compute_average_loss(kl_per, sample_weight=sample_weight)
                     + self.lambda2 * tf.nn.compute_average_loss(l1_per, sample_weight=sample_weight))
        self.optimizer.minimize(total, variables, tape=tape)
        ce = ce_scaled * replicas
        kl = tf.reduce_mean(kl_per)
        l1 = tf.reduce_mean(l1_per)
        values = {"loss": ce + reg + self.lambda1 * kl + self.lambda2 * l1, "ce": ce, "kl": kl,
                  "l1": l1, "masked_fraction": tf.reduce_mean(mask), "eps": eps}
        return self._log(values, y, y_pred, sample_weight)


def _old_fake_quant_vars(x, lo, hi, num_bits=8, narrow_range=False, per_channel=False):
    fq = (tf.quantization.fake_quant_with_min_max_vars_per_channel if per_channel
          else tf.quantization.fake_quant_with_min_max_vars)
    stock_grad = (tf.quantization.fake_quant_with_min_max_vars_per_channel_gradient if per_channel
                  else tf.quantization.fake_quant_with_min_max_vars_gradient)
    x, lo, hi = (tf.convert_to_tensor(v, tf.float32) for v in (x, lo, hi))

    @tf.custom_gradient
    def _fq(x, lo, hi):
        y = fq(x, lo, hi, num_bits=num_bits, narrow_range=narrow_range)

        def grad(dy):
            inside = tf.stop_gradient(stock_grad(tf.ones_like(x), x, lo, hi, num_bits=num_bits,
                                                 narrow_range=narrow_range)[0])
            below, above = _split_by_sign(x, inside)
            axes = list(range(len(x.shape) - 1)) if per_channel else None
            return (dy * inside, tf.reduce_sum(dy * below, axis=axes),
                    tf.reduce_sum(dy * above, axis=axes))

        return y, grad

    return _fq(x, lo, hi)


@contextlib.contextmanager
def old_gradients():
    """Trace models inside the block to get the old fake-quant gradient, in both places that
    call the fake quant: PACT and the QAT scheme's quantizers (TF-MOT's included)."""
    saved = pact.fake_quant_vars, qz.fake_quant_vars
    pact.fake_quant_vars = qz.fake_quant_vars = _old_fake_quant_vars
    try:
        yield
    finally:
        pact.fake_quant_vars, qz.fake_quant_vars = saved


def _old_pact_quantize(x, alpha, bits=8):
    @tf.custom_gradient
    def _pact(x, alpha):
        zero = tf.zeros_like(alpha)
        y = tf.quantization.fake_quant_with_min_max_vars(x, zero, alpha, num_bits=8)
        if bits < 8:
            y = tf.quantization.fake_quant_with_min_max_vars(
                y, zero, alpha * (255 / (2 ** bits - 1)), num_bits=8)

        def grad(dy):
            inside = tf.logical_and(x >= 0.0, x < alpha)
            return dy * tf.cast(inside, dy.dtype), tf.reduce_sum(dy * tf.cast(x >= alpha, dy.dtype))

        return y, grad

    return _pact(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(alpha, tf.float32))


def _old_output_quantizer(self, inputs, training, weights, **kwargs):
    alpha = tf.convert_to_tensor(self._pact.alpha)
    return qz.fake_quant_vars(inputs, tf.zeros_like(alpha), alpha, 8, narrow_range=False)


@contextlib.contextmanager
def old_pact():
    """Build and trace models inside the block to get the old PACT: its hand-written gradient
    (seven plain ops) and, in a QAT model, a second fake quant over [0, alpha] after it."""
    saved = pact.pact_quantize, qz.PACTOutputQuantizer.__call__
    pact.pact_quantize, qz.PACTOutputQuantizer.__call__ = _old_pact_quantize, _old_output_quantizer
    try:
        yield
    finally:
        pact.pact_quantize, qz.PACTOutputQuantizer.__call__ = saved
