"""Saliency-guided train_step: the math against hand computations, fit() integration, QAT, strategy."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kvasir_tf  # noqa: F401  (Keras 2 before tensorflow)
import tensorflow as tf

from kvasir_tf.errors import KvasirError
from kvasir_tf.preprocessing import NEUTRAL_PIXEL
from kvasir_tf.saliency_training import SaliencyGuidedModel
from tests.tiny_models import tiny_pact_cnn

SGT_KEYS = {"loss", "ce", "kl", "l1", "masked_fraction", "eps"}


def linear_model(size=4, classes=3, seed=0, l2=0.0):
    """Softmax regression on raw pixels: its input gradient is known in closed form."""
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((size, size, 3))
    x = tf.keras.layers.Flatten()(inp)
    reg = tf.keras.regularizers.L2(l2) if l2 else None
    out = tf.keras.layers.Dense(classes, activation="softmax", kernel_regularizer=reg,
                                kernel_initializer=tf.keras.initializers.RandomNormal(0, 0.01))(x)
    return tf.keras.Model(inp, out)


def tiny_cnn(size=16, classes=3, seed=0, l2=0.0):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((size, size, 3))
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU(6.0)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    reg = tf.keras.regularizers.L2(l2) if l2 else None
    out = tf.keras.layers.Dense(classes, activation="softmax", kernel_regularizer=reg)(x)
    return tf.keras.Model(inp, out)


def colour_data(n=48, size=16, classes=3, seed=0):
    """Images whose class is the brightest channel: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.uniform(0, 120, (n, size, size, 3)).astype("float32")
    for i, c in enumerate(y):
        x[i, ..., c] += 120
    return x, y.astype("int32")


def wrap(model, optimizer=None, **kwargs):
    sgt = SaliencyGuidedModel(model, **kwargs)
    sgt.compile(optimizer or tf.keras.optimizers.SGD(0.0),
                loss=tf.keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return sgt


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("reduce", ["sum", "max"])
def test_first_step_matches_hand_computation(reduce):
    """Saliency (via l1), eps, masked fraction and KL of one step equal the closed form."""
    size, classes = 4, 3
    model = linear_model(size, classes, seed=1)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (6, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, 6)
    W, b = [v.numpy().astype("float64") for v in model.layers[-1].weights]
    p = _softmax(x.reshape(6, -1) @ W + b)
    onehot = np.eye(classes)[y]
    grad = ((p - onehot) @ W.T).reshape(x.shape)  # dCE_i / dx_i
    s = np.abs(grad).sum(-1) if reduce == "sum" else np.abs(grad).max(-1)
    flat = np.sort(s.ravel())
    eps = flat[int(np.floor(0.3 * (flat.size - 1)))]
    ce = np.mean(-np.log(p[np.arange(6), y]))

    sgt = wrap(model, mask_fraction=0.3, saliency_reduce=reduce, lambda1=2.0, mask_scope="batch")
    logs = sgt.train_on_batch(x, y, return_dict=True)
    # round(0.3 * 96) = 29 pixels of the batch: the 28 below eps and the one at eps. Either
    # count is accepted (a tie at eps would be broken at random); KL must be that outcome's.
    options = [s < eps, s <= eps]
    assert options[0].sum() + 1 == options[1].sum()
    matching = [m for m in options if abs(logs["masked_fraction"] - m.mean()) < 1e-6]
    assert len(matching) == 1, logs["masked_fraction"]
    xm = np.where(matching[0][..., None], NEUTRAL_PIXEL, x)
    q = _softmax(xm.reshape(6, -1) @ W + b)
    kl = np.mean(np.sum(p * (np.log(p) - np.log(q)), -1))
    assert logs["l1"] == pytest.approx(s.mean(), rel=1e-4)
    assert logs["eps"] == pytest.approx(eps, rel=1e-4)
    assert logs["kl"] == pytest.approx(kl, rel=1e-3)
    assert logs["ce"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(ce + 2.0 * kl, rel=1e-4)


@pytest.mark.parametrize("mask_value", ["neutral", "mean"])
def test_fully_masked_kl_uses_mask_value(mask_value):
    size, classes = 4, 3
    model = linear_model(size, classes, seed=2)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (4, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, 4)
    W, b = [v.numpy().astype("float64") for v in model.layers[-1].weights]
    fill = (np.full_like(x, NEUTRAL_PIXEL) if mask_value == "neutral"
            else np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape))
    p = _softmax(x.reshape(4, -1) @ W + b)
    q = _softmax(fill.reshape(4, -1) @ W + b)
    kl = np.mean(np.sum(p * np.log(p / q), -1))
    logs = wrap(model, mask_fraction=1.0, mask_value=mask_value).train_on_batch(x, y, return_dict=True)
    assert logs["masked_fraction"] == 1.0
    assert logs["kl"] == pytest.approx(kl, rel=1e-3)
    assert kl > 1e-4  # the two fills give different, non-trivial answers


def test_noise_mask_changes_prediction():
    model = linear_model(4, 3, seed=3)
    x = np.full((4, 4, 4, 3), 127.5, "float32")  # neutral image: only noise can move it
    logs = wrap(model, mask_fraction=1.0, mask_value="noise").train_on_batch(
        x, np.zeros(4, "int32"), return_dict=True)
    assert logs["kl"] > 0


def test_nothing_masked_gives_zero_kl_and_loss_equals_ce_plus_regularizer():
    model = tiny_cnn(seed=4, l2=0.05)
    x, y = colour_data(8, seed=4)
    p = model(x, training=True).numpy()
    ce = np.mean(-np.log(p[np.arange(8), y]))
    reg = float(tf.add_n(model.losses))
    assert reg > 1e-3
    logs = wrap(model, mask_fraction=0.0, lambda1=5.0).train_on_batch(x, y, return_dict=True)
    assert logs["kl"] == 0.0
    assert logs["masked_fraction"] == 0.0
    assert logs["ce"] == pytest.approx(ce, rel=1e-5)
    assert logs["loss"] == pytest.approx(ce + reg, rel=1e-5)
    # and with masking the KL term is really there
    logs = wrap(tiny_cnn(seed=4), mask_fraction=0.5).train_on_batch(x, y, return_dict=True)
    assert logs["kl"] > 0


def test_masked_fraction_tracks_target():
    x, y = colour_data(64, seed=5)
    sgt = wrap(tiny_cnn(seed=5), tf.keras.optimizers.Adam(1e-3), mask_fraction=0.3,
               eps_momentum=0.5, mask_scope="batch")
    hist = sgt.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert hist["masked_fraction"][-1] == pytest.approx(0.3, abs=0.05)
    # The default (momentum 0) is the exact per-batch quantile, also while training moves the
    # saliency scale (a lr of 1e-2 makes it drift quickly).
    sgt = wrap(tiny_cnn(seed=5), tf.keras.optimizers.Adam(1e-2), mask_fraction=0.7)
    for i in range(4):
        logs = sgt.train_on_batch(x[16 * i:16 * (i + 1)], y[16 * i:16 * (i + 1)], return_dict=True)
        assert logs["masked_fraction"] == pytest.approx(0.7, abs=0.5 / (16 * 16))


def test_masked_pass_does_not_touch_inference_statistics():
    """After a step, BN moving stats equal those of the clean pass alone (masked pass undone)."""
    x, y = colour_data(8, seed=6)
    reference = tiny_cnn(seed=6)
    reference(x, training=True)  # the clean pass's moving-stat update
    model = tiny_cnn(seed=6)
    wrap(model, tf.keras.optimizers.SGD(0.1), mask_fraction=0.5).train_on_batch(x, y)
    stats = [v for v in model.non_trainable_variables if "moving" in v.name]
    assert len(stats) == 2
    for v, r in zip(stats, [v for v in reference.non_trainable_variables if "moving" in v.name]):
        np.testing.assert_allclose(v.numpy(), r.numpy(), rtol=1e-6)
    assert not np.allclose(stats[0].numpy(), 0.0)  # the clean update did happen


def test_fit_with_callbacks_logs_every_key_and_does_not_retrace(tmp_path):
    x, y = colour_data(48, seed=7)
    sgt = wrap(tiny_cnn(seed=7), tf.keras.optimizers.Adam(1e-2))
    traces, counts = [], []

    class Trace(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            counts.append(int(self.model._trackers["kl"].count))

        def on_epoch_end(self, epoch, logs=None):
            traces.append(self.model.train_function.experimental_get_tracing_count())

    hist = sgt.fit(x[:32], y[:32], batch_size=8, epochs=6, validation_data=(x[32:], y[32:]),
                   verbose=0, callbacks=[Trace(), tf.keras.callbacks.CSVLogger(tmp_path / "h.csv"),
                                         tf.keras.callbacks.EarlyStopping("val_loss", patience=10)])
    keys = set(hist.history)
    assert keys == SGT_KEYS | {"accuracy", "val_loss", "val_ce", "val_accuracy"}
    assert traces[0] == traces[-1] and len(traces) == 6
    assert (tmp_path / "h.csv").read_text().splitlines()[0].count(",") == len(keys)
    assert counts == [1, 2, 3, 4] * 6  # trackers reset every epoch
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["ce"][-1] < 0.8 * hist.history["ce"][0]
    assert hist.history["val_accuracy"][-1] > 0.6


def test_warmup_is_the_plain_step_with_the_guided_columns(tmp_path):
    """Warm-up epochs update the weights exactly as the plain step does, log 0 for the guided
    terms (one CSV header for the whole run) and the guided step comes back when it ends."""
    x, y = colour_data(16, seed=9)
    plain = wrap(tiny_cnn(seed=9), tf.keras.optimizers.SGD(0.1), guided=False)
    warm = wrap(tiny_cnn(seed=9), tf.keras.optimizers.SGD(0.1))
    warm.warmup = True
    csv = tf.keras.callbacks.CSVLogger(tmp_path / "h.csv", append=True)
    h_plain = plain.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    h_warm = warm.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[csv]).history
    for a, b in zip(plain.model.get_weights(), warm.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert h_warm["ce"] == pytest.approx(h_plain["ce"], rel=1e-5)
    assert [h_warm[k][0] for k in ("kl", "l1", "masked_fraction", "eps")] == [0.0] * 4
    warm.warmup = False
    h_guided = warm.fit(x, y, batch_size=8, epochs=2, initial_epoch=1, shuffle=False, verbose=0,
                        callbacks=[csv]).history
    assert h_guided["masked_fraction"][0] == pytest.approx(0.5) and h_guided["kl"][0] > 0
    rows = (tmp_path / "h.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].count(",") == rows[1].count(",") == rows[2].count(",")


def test_plain_step_logs_and_learns():
    x, y = colour_data(32, seed=8)
    sgt = wrap(tiny_cnn(seed=8), tf.keras.optimizers.Adam(1e-2), guided=False)
    hist = sgt.fit(x, y, batch_size=8, epochs=4, verbose=0).history
    assert set(hist) == {"loss", "ce", "accuracy"}
    assert hist["ce"][-1] < 0.8 * hist["ce"][0]


def test_lambda2_adds_the_saliency_l1_gradient():
    """SGD weight change with lambda2=1 minus with lambda2=0 is -lr * d mean|S| / dW."""
    size, lr = 4, 0.5
    x, y = colour_data(4, size=size, seed=9)
    w0 = linear_model(size, seed=9).get_weights()
    deltas = []
    for lam2 in (0.0, 1.0):
        model = linear_model(size, seed=9)
        wrap(model, tf.keras.optimizers.SGD(lr), lambda1=0.0, lambda2=lam2).train_on_batch(x, y)
        deltas.append([a - b for a, b in zip(model.get_weights(), w0)])
    model = linear_model(size, seed=9)
    xt = tf.constant(x)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(xt)
            ce = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(y, model(xt)))
        s = tf.reduce_sum(tf.abs(inner.gradient(ce, xt)), -1)
        l1 = tf.reduce_mean(s)
    expected = outer.gradient(l1, model.trainable_variables)
    assert np.abs(expected[0].numpy()).max() > 1e-6
    for d0, d1, g in zip(deltas[0], deltas[1], expected):
        np.testing.assert_allclose(d1 - d0, -lr * g.numpy(), rtol=1e-3, atol=1e-8)


def test_qat_model_trains_and_keeps_quantizer_ranges():
    import tensorflow_model_optimization as tfmot
    x, y = colour_data(32, seed=10)
    qat = tfmot.quantization.keras.quantize_model(tiny_cnn(seed=10))
    reference = tfmot.quantization.keras.quantize_model(tiny_cnn(seed=10))
    reference.set_weights(qat.get_weights())
    reference(x[:8], training=True)
    sgt = wrap(qat, tf.keras.optimizers.Adam(1e-2))
    sgt.train_on_batch(x[:8], y[:8])
    for v, r in zip(qat.non_trainable_variables, reference.non_trainable_variables):
        np.testing.assert_allclose(v.numpy(), r.numpy(), rtol=1e-5, err_msg=v.name)
    hist = sgt.fit(x, y, batch_size=8, epochs=4, verbose=0).history
    assert SGT_KEYS <= set(hist)
    assert hist["ce"][-1] < hist["ce"][0]


def _l1_weight_gradient(model, x, y):
    """d mean|S| / dW by double backprop, S = sum_c |dCE/dX|."""
    xt = tf.constant(x)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(xt)
            ce = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(y, model(xt, training=True)))
        l1 = tf.reduce_mean(tf.reduce_sum(tf.abs(inner.gradient(ce, xt)), -1))
    grads = outer.gradient(l1, model.trainable_variables)
    return [np.zeros(v.shape) if g is None else g.numpy() for v, g in zip(model.trainable_variables, grads)]




def _assert_lambda2_moves_kernels_by(fresh, l1_gradient, x, y):
    """One SGD step with lambda2 > 0, minus one with lambda2 = 0, moves every kernel by
    -lr * lambda2 * ``l1_gradient`` (the step is called with no block around it). S is in
    raw-pixel units (~1e-5 here): a large lambda2 makes its update measurable."""
    lr, lam2, after = 1e-3, 1e5, []
    for lam in (0.0, lam2):
        model = fresh()
        wrap(model, tf.keras.optimizers.SGD(lr), lambda1=0.0, lambda2=lam,
             mask_fraction=0.0).train_on_batch(x, y)
        after.append(model.get_weights())
    model = fresh()
    position = {id(w): i for i, w in enumerate(model.weights)}
    trainable = [position[id(v)] for v in model.trainable_variables]
    kernels = [i for i, g in enumerate(l1_gradient) if g.ndim >= 2]
    assert kernels
    for i in kernels:
        j, step = trainable[i], -lr * lam2 * l1_gradient[i]
        assert np.abs(step).max() > 1e-4
        np.testing.assert_allclose(after[1][j] - after[0][j], step, rtol=1e-2,
                                   atol=1e-3 * np.abs(step).max())


def test_lambda2_trains_a_pact_qat_model_through_its_fake_quants():
    """The L1 term's weight gradient in a QAT model: with TensorFlow's own FakeQuant gradient
    ops every path through them is dropped (a different, wrong gradient); ours keep them,
    and lambda2 then moves the weights by exactly -lr * lambda2 * that gradient."""
    from kvasir_tf.qat import apply_qat
    from kvasir_tf.qat.quantizers import stock_gradients, twice_differentiable
    x, y = colour_data(8, size=16, seed=13)
    weights = apply_qat(tiny_pact_cnn(), "pact").get_weights()

    def fresh():
        model = apply_qat(tiny_pact_cnn(), "pact")
        model.set_weights(weights)
        return model

    with twice_differentiable():
        ours = _l1_weight_gradient(fresh(), x, y)
    with stock_gradients():
        stock = _l1_weight_gradient(fresh(), x, y)
    kernels = [i for i, g in enumerate(ours) if g.ndim >= 2]
    assert len(kernels) == 3 and min(np.abs(ours[i]).max() for i in kernels) > 1e-6
    rel = [np.abs(ours[i] - stock[i]).max() / (np.abs(ours[i]).max() + 1e-12) for i in kernels]
    assert max(rel) > 0.05, rel                 # stock TF drops terms: the gradients differ

    _assert_lambda2_moves_kernels_by(fresh, ours, x, y)


def test_lambda2_reaches_through_pact_without_a_block_around_the_step():
    """A float PACT model trained with lambda2 > 0 by a caller that set up nothing: the step
    enters the twice-differentiable block itself, so the L1 term's weight change is the double
    backprop gradient through PACT's fake quants (TensorFlow's own gradient would drop it)."""
    from kvasir_tf.qat.quantizers import twice_differentiable
    x, y = colour_data(8, size=16, seed=14)
    weights = tiny_pact_cnn().get_weights()

    def fresh():
        model = tiny_pact_cnn()
        model.set_weights(weights)
        return model

    with twice_differentiable():
        expected = _l1_weight_gradient(fresh(), x, y)
    _assert_lambda2_moves_kernels_by(fresh, expected, x, y)


def test_pact_model_logs_mean_alpha():
    from kvasir_tf import model as model_mod
    model = model_mod.build_mobilenetv2(32, 3, alpha=0.35, activation="pact", dropout=0.0, seed=0)
    x, y = colour_data(8, size=32, seed=11)
    logs = wrap(model, tf.keras.optimizers.Adam(1e-2)).train_on_batch(x, y, return_dict=True)
    assert logs["mean_alpha"] == pytest.approx(6.0, abs=0.05)  # alpha_init, one Adam step away
    alphas = [v for v in model.trainable_variables if v.name.endswith("alpha:0")]
    assert len(alphas) > 10
    assert any(abs(float(a) - 6.0) > 1e-6 for a in alphas)  # alphas are trained


class _GradientProbe(tf.keras.layers.Layer):
    """Records, each time the model is traced, whether the fake quants would take the
    twice-differentiable gradient there."""

    def __init__(self, seen, **kwargs):
        super().__init__(**kwargs)
        self.seen = seen

    def call(self, x):
        from kvasir_tf.fake_quant import is_twice_differentiable
        self.seen.append(is_twice_differentiable())
        return x


@pytest.mark.parametrize("guided", [True, False])
def test_every_step_takes_the_twice_differentiable_gradient_also_in_replica_threads(guided):
    """The one rule (kvasir_tf.qat.quantizers): every train and test step of the wrapper, guided
    or plain, traces the model inside the block -- under MirroredStrategy too, whose replica
    threads do not see a block entered around fit() -- and nothing outside stays in it."""
    from kvasir_tf.fake_quant import is_twice_differentiable
    seen = []
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        inp = tf.keras.Input((4, 4, 3))
        out = tf.keras.layers.Dense(2, activation="softmax")(
            tf.keras.layers.Flatten()(_GradientProbe(seen)(inp)))
        sgm = SaliencyGuidedModel(tf.keras.Model(inp, out), guided=guided)
        sgm.compile(tf.keras.optimizers.SGD(0.01), loss=tf.keras.losses.SparseCategoricalCrossentropy())
    seen.clear()                                   # building the functional model called it once
    x, y = np.ones((4, 4, 4, 3), "float32"), np.zeros(4, "int32")
    sgm.fit(x, y, validation_data=(x, y), epochs=1, verbose=0)
    traced_in_fit = len(seen)
    sgm.predict(x, verbose=0)                      # inference is not a step: TensorFlow's gradient
    assert traced_in_fit >= 2 and all(seen[:traced_in_fit]), seen
    assert seen[traced_in_fit:] and not any(seen[traced_in_fit:]) and not is_twice_differentiable()


@pytest.mark.parametrize("kwargs", [dict(mask_value="zero"), dict(saliency_reduce="mean"),
                                    dict(mask_fraction=1.5), dict(eps_momentum=1.0),
                                    dict(lambda1=-1.0)])
def test_bad_arguments_raise_kvasir_error(kwargs):
    with pytest.raises(KvasirError):
        SaliencyGuidedModel(linear_model(), **kwargs)


MIRRORED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import kvasir_tf, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from tests.test_saliency_training import linear_model, colour_data, wrap
    x, y = colour_data(4, size=4, seed=12)
    out = {}
    for name, n in (("single", 1), ("mirrored", 2)):
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])
        with strategy.scope():
            model = linear_model(4, seed=12)
            sgt = wrap(model, tf.keras.optimizers.SGD(0.5), mask_fraction=0.5, lambda1=3.0)
        # 2 steps each: one device on x, x; two replicas on [x; x], [x; x] (x per replica)
        xs, ys = np.concatenate([x] * 2 * n), np.concatenate([y] * 2 * n)
        h = sgt.fit(xs, ys, batch_size=4 * n, epochs=1, shuffle=False, verbose=0).history
        out[name] = {"w": [w.tolist() for w in model.get_weights()],
                     "logs": {k: v[-1] for k, v in h.items()},
                     "replicas": strategy.num_replicas_in_sync}
    print(json.dumps(out))
""")


def test_mirrored_strategy_matches_single_device(tmp_path):
    """Two replicas on [x; x] take the same steps as one device on x: per-replica scaling."""
    from pathlib import Path
    root = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    proc = subprocess.run([sys.executable, str(script), root], capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mirrored"]["replicas"] == 2
    for a, b in zip(out["single"]["w"], out["mirrored"]["w"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)
    for key in ("ce", "kl", "eps", "masked_fraction", "loss"):
        assert out["mirrored"]["logs"][key] == pytest.approx(out["single"]["logs"][key], rel=1e-4)
    assert out["single"]["logs"]["kl"] > 0


def test_tied_saliency_is_masked_to_the_target_fraction():
    """Most pixels have saliency exactly 0: `S <= eps` alone would mask all of them."""
    sgt = wrap(tiny_cnn(seed=5), mask_fraction=0.5)
    s = np.zeros((4, 16, 16), np.float32)
    s[:, :4, :] = np.random.default_rng(0).uniform(0.1, 1.0, (4, 4, 16))   # 25 % non-zero
    _, mask, eps = sgt._mask(tf.zeros((4, 16, 16, 3)), tf.constant(s))
    assert float(eps) == 0.0
    np.testing.assert_array_equal(tf.reduce_sum(mask, [1, 2, 3]).numpy(), [128] * 4)  # not 192
    assert float(tf.reduce_sum(mask[:, :4])) == 0.0                   # salient pixels are kept
    again = sgt._mask(tf.zeros((4, 16, 16, 3)), tf.constant(s))[1]
    assert not np.array_equal(mask.numpy(), again.numpy())           # ties drawn at random


def _scaled_saliency(shape=(6, 24, 40), seed=1):
    """Images whose saliency scales differ by 100x, with ties and a stride-2 column pattern."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    s[:, :, 0::2] += 1.0
    s[:, :5] = 0.0                                              # tied at 0
    s *= np.logspace(-2, 0, shape[0], dtype=np.float32)[:, None, None]
    return s


@pytest.mark.parametrize("fraction", [0.5, 0.3])
def test_scope_image_masks_the_fraction_of_every_image(fraction):
    s = _scaled_saliency()
    n = s[0].size
    sgt = wrap(tiny_cnn(seed=5), mask_fraction=fraction)           # mask_scope="image" default
    _, mask, eps = sgt._mask(tf.zeros(s.shape + (3,)), tf.constant(s))
    per_image = mask.numpy().reshape(len(s), -1).mean(1)
    np.testing.assert_allclose(per_image, fraction, atol=0.5 / n + 1e-9)
    m = mask.numpy()[..., 0].astype(bool)
    for i in range(len(s)):                       # each image's least salient pixels
        assert s[i][m[i]].max() <= s[i][~m[i]].min()
    kth = [np.sort(si.ravel())[int(round(fraction * n)) - 1] for si in s]
    assert float(eps) == pytest.approx(np.mean(kth), rel=1e-6)


def test_scope_batch_masks_the_fraction_of_the_batch_not_of_each_image():
    s = _scaled_saliency()
    sgt = wrap(tiny_cnn(seed=5), mask_fraction=0.5, mask_scope="batch")
    _, mask, _ = sgt._mask(tf.zeros(s.shape + (3,)), tf.constant(s))
    assert float(tf.reduce_mean(mask)) == pytest.approx(0.5, abs=0.5 / s.size + 1e-9)
    per_image = mask.numpy().reshape(len(s), -1).mean(1)
    assert per_image[0] == 1.0 and per_image[-1] < 0.25           # low-saliency images lose all


def test_mask_scope_is_validated():
    with pytest.raises(KvasirError, match="mask_scope"):
        SaliencyGuidedModel(linear_model(), mask_scope="pixel")
    with pytest.raises(KvasirError, match="batch"):
        SaliencyGuidedModel(linear_model(), eps_momentum=0.5)
