"""Saliency-guided training (Algorithm 2 of the paper) as a ``tf.keras.Model`` wrapper.

:class:`SaliencyGuidedModel` wraps a float or QAT-wrapped classifier (softmax outputs, raw
pixel inputs) and overrides ``train_step``/``test_step`` so that ``compile()``/``fit()``,
callbacks, metrics and progress bars keep working. One guided step:

1. clean forward ``p = f(X)`` (training mode) under two nested tapes;
2. saliency ``S = |dCE/dX|`` reduced over channels, from the *same* forward pass
   (no separate saliency pass);
3. the ``mask_fraction`` least salient pixels of each image (``mask_scope="image"``; of
   the whole batch with ``"batch"``), ties at the threshold ``eps`` broken at random, are
   replaced by a mask value, ``X~``; masked forward ``q = f(X~)``;
4. ``loss = CE(p, y) + lambda1 * KL(p || q) + lambda2 * mean|S| + model.losses``;
   ONE weight backward over both passes; the optimizer updates every trainable variable
   (weights and PACT alphas).

Cost, by operation count: plain step = 1 forward + 1 backward; guided step = 2 forwards +
1 input-only backward + 1 backward through both passes (~2.3x; what each part measures is in
the README, "Step cost", by ``tools/profile_train_step.py``). ``lambda2 > 0`` records the
input backward on the weight tape (double backprop): a further backward-of-backward, measured
2.4x the guided step's time and 2.5x its peak memory (float SGT, MobileNetV2 1.0, 224 px, batch
32, CPU; tools/benchmark_train.py ``sgt-pact-qat-l2`` measures the QAT model's). Such a step
needs every fake quant (TF-MOT's and PACT's) to have a twice-differentiable gradient
(:mod:`kvasir_tf.fake_quant`; TensorFlow's own would drop the L1 term's paths through them):
every step of this model, of any mode, runs inside :func:`kvasir_tf.qat.twice_differentiable`.
``lambda2`` defaults to 0: on Kvasir-SEG patches lambda2 = 10 in the paper's model lowered mean|S|
by 42 % but its test accuracy gain (0.780 vs 0.759, 3 of 141 images) is within noise (README).
"""

import tensorflow as tf

from kvasir_tf import config as C
from kvasir_tf.errors import KvasirError
from kvasir_tf.preprocessing import NEUTRAL_PIXEL, PIXEL_MAX, PIXEL_MIN
from kvasir_tf.qat import pact_alphas, twice_differentiable

# The settings' defaults, choices and rules are TrainConfig's (kvasir_tf.config).
KL_EPSILON = 1e-7
class SaliencyGuidedModel(tf.keras.Model):
    """Trains ``model`` with saliency-guided masking; ``guided=False`` gives the plain step.

    Ten keyword options: each is one setting of Algorithm 2 that ``TrainConfig`` exposes as a
    flag, and ``kvasir_tf.train`` passes them one for one; grouping them would only rename them.

    Args:
        model: flat Keras classifier taking raw pixels and returning softmax probabilities;
            float or TF-MOT QAT-wrapped. Save ``.model``, not the wrapper.
        guided: False = plain supervised step (same logs minus kl/l1/masked_fraction/eps).
        lambda1: weight of KL(softmax f(X) || softmax f(X_masked)).
        lambda2: weight of the saliency L1 term, scaled as ``mean|S|`` (per image, the mean
            over its H x W pixels of S, the RGB-summed |dCE/dX| in raw-pixel units; then the
            batch mean) where the paper writes the sum ``||S||_1``: ``lambda2 * mean|S|`` is
            the paper's ``(lambda2 / (H * W)) * ||S||_1`` per image, so one value means the
            same at every image size. It needs double backprop (a backward-of-backward),
            which the step gets through every fake quant by running inside
            :func:`kvasir_tf.qat.twice_differentiable`.
        mask_fraction: target fraction of pixels masked (paper: 0.5), per image or per batch.
        mask_scope: "image" (default; each image loses exactly ``round(mask_fraction * H * W)``
            pixels) or "batch" (the batch does; single images range widely).
        mask_value: "neutral" (pixel 127.5 = 0 in the model's input space), "mean"
            (per-image, per-channel mean) or "noise" (uniform pixels 0..255).
        saliency_reduce: "sum" (default) or "max" of |dCE/dX| over RGB. Sum is the
            L1 norm of the per-pixel gradient, i.e. the first-order change of the loss when
            the whole pixel moves, which is what masking a pixel does; max ignores two
            channels' evidence and is noisier.
        eps_momentum: smoothing of the threshold (scope "batch" only); 0 (default) = each
            batch's own quantile.
        saliency_every: K = 1 (default, the paper): S from every batch's own input gradient.
            K > 1 (stale saliency, an approximation): S is computed at every K-th optimizer
            step; steps between reuse the batch-mean S of the last such step for every image.
            An image's own old S cannot be reused: batches are shuffled, so a stored per-image
            map belongs to another image; the batch mean is where the model looks in general,
            valid for any batch. Saves the input backward on K-1 of K steps (README, "Step
            cost"); not with ``lambda2 > 0``, whose term needs the current S.

    Deviation from the paper (Algorithm 2, line 12): there eps is updated by a gradient of
    the masked fraction w.r.t. eps, which is zero almost everywhere (the fraction is a step
    function of eps). Here eps is ``eps <- m * eps + (1 - m) * Q_k(S)``, with ``Q_k`` the
    per-batch ``mask_fraction`` quantile of S (initialised to the first batch's quantile),
    kept in a non-trainable ``tf.Variable``. The default m = 0 uses each image's (each
    batch's) exact quantile, so the masked fraction equals ``mask_fraction`` in every image
    (batch) to one pixel; the logged ``eps`` is then the mean of the images' thresholds. A smoothed threshold (m > 0)
    lags behind the saliency scale, which shrinks as the loss falls, so it masks more than the
    target while training improves. Use m > 0 only where batches are so small that their
    quantiles are noisy.

    S is ``B * dL/dX`` with L the batch-mean compiled loss, i.e. each image's own
    ``dCE_i/dX_i`` in raw-pixel units, independent of batch size and replica count.

    Batch-norm statistics: the clean pass runs with ``training=True`` (batch statistics,
    and it updates the moving mean/variance and QAT range EMAs that inference uses). The
    masked pass also runs with ``training=True`` so both passes are normalised the same
    way (with moving statistics, early in training the KL would measure the train/inference
    BN mismatch rather than the masking), but its updates of the moving statistics and
    quantizer ranges are discarded: every non-trainable variable of ``model`` is restored
    to its post-clean-pass value, so masked images (half grey) never reach the statistics
    used at inference. Dropout, if any, draws independent masks in the two passes.

    Distribution: losses are per-replica means divided by the number of replicas (the
    compiled loss does this for CE; ``tf.nn.compute_average_loss`` for KL/L1), so the
    summed replica gradients equal the global-batch gradient. eps is a MEAN-aggregated
    mirrored variable.
    """

    def __init__(self, model, *, guided=True, lambda1=C.LAMBDA1, lambda2=C.LAMBDA2,
                 mask_fraction=C.MASK_FRACTION, mask_scope=C.MASK_SCOPES[0], mask_value=C.MASK_VALUES[0],
                 saliency_reduce=C.SALIENCY_REDUCES[0], eps_momentum=0.0, saliency_every=C.SALIENCY_EVERY,
                 name=None, **kwargs):
        super().__init__(name=name or f"sgt_{model.name}", **kwargs)
        C.check_guided_step(lambda1=lambda1, lambda2=lambda2, mask_fraction=mask_fraction,
                            mask_scope=mask_scope, mask_value=mask_value,
                            saliency_reduce=saliency_reduce, saliency_every=saliency_every)
        if not 0.0 <= float(eps_momentum) < 1.0:
            raise KvasirError(f"eps_momentum={eps_momentum} must be within [0, 1)")
        if float(eps_momentum) > 0 and mask_scope != "batch":
            raise KvasirError(f"eps_momentum={eps_momentum} smooths one threshold for the whole "
                              "batch: use it with mask_scope='batch'")
        self.model = model
        self.guided = bool(guided)
        self.lambda1 = float(lambda1)
        self.lambda2 = float(lambda2)
        self.mask_fraction = float(mask_fraction)
        self.mask_scope = mask_scope
        self.mask_value = mask_value
        self.saliency_reduce = saliency_reduce
        self.eps_momentum = float(eps_momentum)
        self.saliency_every = int(saliency_every)
        if self.saliency_every > 1:
            size = tuple(model.input_shape[1:3])
            if None in size:
                raise KvasirError("saliency_every > 1 needs a model with a fixed input size")
            # The last refresh's batch-mean saliency map; -1 = none yet. Per replica.
            self._stale_map = tf.Variable(
                tf.fill(size, -1.0), trainable=False, name="stale_saliency",
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.MEAN)
        # -1 = not yet initialised (saliency is >= 0, so a negative eps masks nothing).
        self.eps = tf.Variable(-1.0, trainable=False, dtype=tf.float32, name="saliency_eps",
                               synchronization=tf.VariableSynchronization.ON_WRITE,
                               aggregation=tf.VariableAggregation.MEAN)
        # Tie-breaking and "noise" fills draw from this generator, which training re-seeds
        # per epoch (kvasir_tf.train), so a resumed run repeats the same masks.
        self.rng = tf.random.Generator.from_seed(0)
        self._alphas = pact_alphas(model)
        names = ["loss", "ce"]
        if self.guided:
            names += ["kl", "l1", "masked_fraction", "eps"]
        if self._alphas:
            names.append("mean_alpha")
        self._trackers = {n: tf.keras.metrics.Mean(name=n) for n in names}
        self._warmup = False

    @property
    def warmup(self) -> bool:
        """True: a guided model takes the plain CE step (no saliency, mask or KL), logging 0
        for kl/l1/masked_fraction/eps so the history keeps its columns. Training sets it per
        epoch (``warmup_epochs``); a change retraces the step."""
        return self._warmup

    @warmup.setter
    def warmup(self, value):
        if bool(value) != self._warmup:
            self._warmup = bool(value)
            self.train_function = None      # fit() builds the step again for the other branch

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    @property
    def metrics(self):
        # Own trackers replace compiled_loss's "loss" (which would miss KL/L1).
        extra = self.compiled_metrics.metrics if self.compiled_metrics is not None else []
        return list(self._trackers.values()) + list(extra)

    # -- pieces of the step -------------------------------------------------------------
    def _saliency(self, tape, input_tape, ce_scaled, x, global_batch):
        """S [B, H, W] from the clean pass's input tape; on the weight tape only when the L1
        term needs its second derivative. With ``saliency_every`` K > 1, steps between
        refreshes reuse the last refresh's batch-mean map (class docstring)."""
        def fresh():
            return self._reduce_saliency(input_tape.gradient(ce_scaled, x) * global_batch)

        if self.lambda2 > 0:
            return fresh()
        with tape.stop_recording():
            if self.saliency_every == 1:
                return fresh()

            def refreshed():
                s = fresh()
                with tf.control_dependencies([self._stale_map.assign(tf.reduce_mean(s, axis=0))]):
                    return tf.identity(s)

            def stale():
                return tf.broadcast_to(self._stale_map, tf.shape(x)[:3])

            due = tf.equal(self.optimizer.iterations % self.saliency_every, 0)
            return tf.cond(tf.logical_or(due, self._stale_map[0, 0] < 0.0), refreshed, stale)

    def _reduce_saliency(self, grad):
        a = tf.abs(grad)
        if self.saliency_reduce == "sum":
            return tf.reduce_sum(a, axis=-1)
        return tf.reduce_max(a, axis=-1)

    def _ranked(self, rows, k):
        """Per row of ``rows`` [R, N]: the ``k`` least salient pixels, ties broken at random.

        Each pixel's key is its saliency's bits (monotone for S >= 0) above 32 random bits, so
        the key order is the saliency order with ties shuffled; the k-th smallest key is the
        row's threshold and exactly k pixels (k + 1 only if two random draws collide at that
        key, p ~ 1e-5) are masked. The k-th key comes from one selection per row
        (``NthElement``, linear time), not a sort: the same key, 3-4x cheaper (README, "Step
        cost"). Returns (mask [R, N], the k-th smallest S of each row [R]).
        """
        bits = tf.cast(tf.bitcast(rows, tf.int32), tf.int64)
        noise = self.rng.uniform_full_int(tf.shape(rows), tf.int64) & 0xFFFFFFFF
        keys = bits * (1 << 32) + noise
        kth = tf.raw_ops.NthElement(input=keys, n=tf.maximum(k - 1, 0))[:, None]
        mask = tf.logical_and(keys <= kth, k > 0)
        eps = tf.bitcast(tf.cast(kth[:, 0] // (1 << 32), tf.int32), tf.float32)
        return mask, eps

    def _quantile_mask(self, s):
        """``mask_fraction`` of each image's pixels (scope image) or of the batch's (scope batch)."""
        shape = tf.shape(s)
        rows = tf.reshape(s, [shape[0], -1] if self.mask_scope == "image" else [1, -1])
        n = tf.cast(tf.shape(rows)[1], tf.float32)
        k = tf.cast(tf.math.round(self.mask_fraction * n), tf.int32)
        mask, eps = self._ranked(rows, k)
        if self.eps_momentum > 0.0:  # scope batch only (checked in __init__)
            q = eps[0]
            new = tf.where(self.eps < 0.0, q, self.eps_momentum * self.eps + (1 - self.eps_momentum) * q)
            self.eps.assign(new)
            eps = tf.identity(self.eps)
            return self._threshold(s, eps), eps
        self.eps.assign(tf.reduce_mean(eps))
        return tf.reshape(mask, shape), tf.reduce_mean(eps)

    def _threshold(self, s, eps):
        """A smoothed threshold (eps_momentum > 0): ``S < eps``, plus a random share of the
        pixels with ``S == eps`` that keeps the expected fraction at ``mask_fraction`` (pixels
        whose gradient is exactly 0, clipped by PACT or ReLU6 downstream, can outnumber it)."""
        below = s < eps
        tied = tf.equal(s, eps)
        n = tf.cast(tf.size(s), tf.float32)
        n_below = tf.reduce_sum(tf.cast(below, tf.float32))
        n_tied = tf.reduce_sum(tf.cast(tied, tf.float32))
        share = tf.clip_by_value((self.mask_fraction * n - n_below) / tf.maximum(n_tied, 1.0), 0.0, 1.0)
        return tf.logical_or(below, tf.logical_and(tied, self.rng.uniform(tf.shape(s)) < share))

    def _fill(self, x):
        if self.mask_value == "neutral":
            return tf.fill(tf.shape(x), tf.constant(NEUTRAL_PIXEL, x.dtype))
        if self.mask_value == "mean":
            return tf.broadcast_to(tf.reduce_mean(x, axis=[1, 2], keepdims=True), tf.shape(x))
        return self.rng.uniform(tf.shape(x), PIXEL_MIN, PIXEL_MAX, dtype=x.dtype)

    def _mask(self, x, s):
        """X with low-saliency pixels replaced; returns (X_masked, mask as float [B,H,W,1])."""
        if self.mask_fraction <= 0.0:
            mask = tf.zeros_like(s, dtype=tf.bool)
            eps = tf.constant(-1.0)
        elif self.mask_fraction >= 1.0:
            mask = tf.ones_like(s, dtype=tf.bool)
            eps = tf.reduce_max(s)
        else:
            mask, eps = self._quantile_mask(s)
        mask = mask[..., None]
        return tf.where(mask, self._fill(x), x), tf.cast(mask, x.dtype), eps

    @staticmethod
    def _kl(p, q):
        p = tf.clip_by_value(p, KL_EPSILON, 1.0)
        q = tf.clip_by_value(q, KL_EPSILON, 1.0)
        return tf.reduce_sum(p * (tf.math.log(p) - tf.math.log(q)), axis=-1)

    def _regularization(self):
        losses = self.model.losses
        return tf.add_n(losses) if losses else tf.constant(0.0)

    def _log(self, values, y, y_pred, sample_weight):
        for name, value in values.items():
            if name in self._trackers:
                self._trackers[name].update_state(value)
        if self._alphas:
            self._trackers["mean_alpha"].update_state(
                tf.reduce_mean(tf.stack([tf.reshape(a, []) for a in self._alphas])))
        self.compiled_metrics.update_state(y, y_pred, sample_weight)
        logs = {n: t.result() for n, t in self._trackers.items() if n in values or n == "mean_alpha"}
        logs.update({m.name: m.result() for m in self.compiled_metrics.metrics})
        return logs

    # -- steps ---------------------------------------------------------------------------
    # Every step, guided or plain, warm-up or not, train or test, takes the twice-differentiable
    # fake-quant gradient: the one rule for it (kvasir_tf.qat.quantizers). The L1 term needs it
    # (it differentiates S again through every fake quant); first derivatives are the same ops
    # either way. Entered in the step itself, so tf.distribute's replica threads see it too.
    def train_step(self, data):
        with twice_differentiable():
            return self._train_step(data)

    def test_step(self, data):
        with twice_differentiable():
            return self._test_step(data)

    def _train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, tf.float32)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.trainable_variables
        if not self.guided or self._warmup:
            with tf.GradientTape() as tape:
                y_pred = self.model(x, training=True)
                ce_scaled = self.compiled_loss(y, y_pred, sample_weight)
                reg = self._regularization()
                total = ce_scaled + reg / replicas
            self.optimizer.minimize(total, variables, tape=tape)
            ce = ce_scaled * replicas
            values = {"loss": ce + reg, "ce": ce}
            if self.guided:  # warm-up: the guided columns, at what nothing masked means
                zero = tf.constant(0.0)
                values.update(kl=zero, l1=zero, masked_fraction=zero, eps=zero)
            return self._log(values, y, y_pred, sample_weight)

        state = self.model.non_trainable_variables
        global_batch = tf.cast(tf.shape(x)[0] * replicas, tf.float32)
        with tf.GradientTape() as tape:
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:
                input_tape.watch(x)
                # Clean pass: BN uses batch statistics and updates the moving statistics
                # (and QAT range EMAs) that inference uses. Its forward is also the loss's.
                with tf.name_scope("clean_pass"):
                    y_pred = self.model(x, training=True)
                    ce_scaled = self.compiled_loss(y, y_pred, sample_weight)
            with tf.name_scope("saliency"):
                s = self._saliency(tape, input_tape, ce_scaled, x, global_batch)
            with tf.name_scope("mask"):
                x_masked, mask, eps = self._mask(tf.stop_gradient(x), tf.stop_gradient(s))
            with tf.name_scope("snapshot"):
                post_clean = [tf.identity(v) for v in state]
            # Masked pass: training-mode BN (batch statistics, like the clean pass); its
            # moving-statistic / quantizer-range updates are undone right after.
            with tf.name_scope("masked_pass"):
                y_masked = self.model(x_masked, training=True)
            with tape.stop_recording(), tf.name_scope("restore"):
                for v, value in zip(state, post_clean):
                    v.assign(value)
            kl_per = self._kl(y_pred, y_masked)
            l1_per = tf.reduce_mean(s, axis=[1, 2])
            reg = self._regularization()
            total = (ce_scaled + reg / replicas
                     + self.lambda1 * tf.nn.compute_average_loss(kl_per, sample_weight=sample_weight)
                     + self.lambda2 * tf.nn.compute_average_loss(l1_per, sample_weight=sample_weight))
        with tf.name_scope("weight_backward"):  # names the custom-gradient ops (profiling)
            self.optimizer.minimize(total, variables, tape=tape)
        ce = ce_scaled * replicas
        kl = tf.reduce_mean(kl_per)
        l1 = tf.reduce_mean(l1_per)
        values = {"loss": ce + reg + self.lambda1 * kl + self.lambda2 * l1, "ce": ce, "kl": kl,
                  "l1": l1, "masked_fraction": tf.reduce_mean(mask), "eps": eps}
        return self._log(values, y, y_pred, sample_weight)

    def _test_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self.model(tf.cast(x, tf.float32), training=False)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        ce = self.compiled_loss(y, y_pred, sample_weight) * replicas
        reg = self._regularization()
        return self._log({"loss": ce + reg, "ce": ce}, y, y_pred, sample_weight)

    def predict_step(self, data):
        x, _, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        return self.model(tf.cast(x, tf.float32), training=False)
