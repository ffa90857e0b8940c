"""PACT forward/backward against hand-computed values, levels, penalty, constraint, serialisation."""
import numpy as np
import pytest

import kvasir_tf  # noqa: F401
import tensorflow as tf

from kvasir_tf.errors import KvasirError
from kvasir_tf.pact import ALPHA_MIN, PACT, pact_quantize


def _fwd_grad(bits, alpha, xs, weights):
    layer = PACT(bits=bits, alpha_init=alpha, eta=0.0)
    x = tf.constant(xs, tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant(weights, tf.float32))
    return y.numpy(), tape.gradient(loss, x).numpy(), float(tape.gradient(loss, layer.alpha))


def test_forward_and_both_gradients_2bit():
    # alpha 3, 2 bits: levels 0, 1, 2, 3 (step alpha / 3 = 1)
    xs = [-1.0, 0.0, 0.4, 1.2, 1.6, 2.9, 3.0, 5.0]
    w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    y, dx, dalpha = _fwd_grad(2, 3.0, xs, w)
    np.testing.assert_allclose(y, [0, 0, 0, 1, 2, 3, 3, 3], atol=1e-6)
    # STE: dy/dx = 1 on [0, alpha], 0 below 0 and above alpha; x = alpha exactly counts as
    # inside (TensorFlow's fake-quant gradient; the paper gives that one point to alpha)
    np.testing.assert_allclose(dx, [0, 2, 3, 4, 5, 6, 7, 0])
    # dy/dalpha = 1 where x > alpha (x = 5.0)
    assert dalpha == pytest.approx(8.0)


def test_forward_4bit_matches_formula():
    alpha = 1.5
    xs = np.array([-0.3, 0.04, 0.26, 0.61, 0.99, 1.3, 1.49, 2.0], np.float32)
    y, dx, dalpha = _fwd_grad(4, alpha, xs, np.ones_like(xs))
    step = alpha / 15
    expected = np.round(np.clip(xs, 0, alpha) / step) * step
    np.testing.assert_allclose(y, expected, atol=1e-5)
    np.testing.assert_allclose(dx, [0, 1, 1, 1, 1, 1, 1, 0])
    assert dalpha == pytest.approx(1.0)


def test_forward_8bit_step_is_alpha_over_255():
    alpha = 2.0
    xs = np.array([0.01, 0.5, 1.234, 1.999], np.float32)
    y = pact_quantize(xs, alpha, 8).numpy()
    np.testing.assert_allclose(y, np.round(xs * 255 / alpha) * alpha / 255, atol=1e-6)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_exactly_2_pow_k_levels(bits):
    alpha = 1.7
    x = np.linspace(-1.0, 2 * alpha, 20001, dtype=np.float32)
    y = pact_quantize(x, alpha, bits).numpy()
    levels = np.unique(y)
    assert len(levels) == 2 ** bits
    assert levels[0] == 0.0 and levels[-1] == pytest.approx(alpha, abs=1e-6)
    # evenly spaced by alpha / (2^k - 1), up to the 8-bit output grid (alpha / 510)
    np.testing.assert_allclose(np.diff(levels), alpha / (2 ** bits - 1), atol=alpha / 255 + 1e-6)


def test_alpha_l2_penalty_in_losses():
    layer = PACT(alpha_init=4.0, eta=0.01)
    layer(tf.zeros((1, 3)))
    assert len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(0.01 * 16.0)
    layer.alpha.assign(2.0)
    assert float(layer.losses[0]) == pytest.approx(0.01 * 4.0)
    no_penalty = PACT(eta=0.0)
    no_penalty(tf.zeros((1, 3)))
    assert no_penalty.losses == []


def test_alpha_stays_positive_under_optimizer():
    layer = PACT(alpha_init=1.0, eta=0.0)
    layer(tf.zeros((1, 2)))
    opt = tf.keras.optimizers.SGD(learning_rate=10.0)
    x = tf.constant([[5.0, 7.0]])  # both above alpha: dloss/dalpha = 2 * 100
    with tf.GradientTape() as tape:
        loss = 100.0 * tf.reduce_sum(layer(x))
    grads = tape.gradient(loss, [layer.alpha])
    opt.apply_gradients(zip(grads, [layer.alpha]))  # 1 - 10 * 200 would be -1999
    assert float(layer.alpha) == pytest.approx(ALPHA_MIN)


def test_config_round_trip_and_load_with_custom_objects(tmp_path):
    layer = PACT(bits=4, alpha_init=2.5, eta=0.003, name="act")
    clone = PACT.from_config(layer.get_config())
    assert (clone.bits, clone.alpha_init, clone.eta, clone.name) == (4, 2.5, 0.003, "act")

    inp = tf.keras.Input((5,))
    model = tf.keras.Model(inp, PACT(bits=4, alpha_init=2.5, name="act")(tf.keras.layers.Dense(5)(inp)))
    model.get_layer("act").alpha.assign(1.234)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path, custom_objects={"PACT": PACT})
    assert float(loaded.get_layer("act").alpha) == pytest.approx(1.234)
    x = np.random.RandomState(0).normal(size=(4, 5)).astype("float32") * 3
    np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())


@pytest.mark.parametrize("bits", [1, 9, 4.0, "8"])
def test_bad_bits_is_a_user_error(bits):
    with pytest.raises(KvasirError, match="bits"):
        PACT(bits=bits)


def test_double_backprop_through_pact():
    """The saliency L1 term differentiates an input gradient w.r.t. weights."""
    w = tf.Variable([[0.5, -1.0], [2.0, 0.3]])
    layer = PACT(alpha_init=1.0, eta=0.0)
    x = tf.constant([[0.4, 0.2], [0.1, 0.3]])
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            loss = tf.reduce_sum(layer(tf.matmul(x, w)) * tf.constant([1.0, 2.0]))
        sal = inner.gradient(loss, x)
        l1 = tf.reduce_sum(tf.abs(sal))
    g = outer.gradient(l1, w)
    # pre-activations x @ w: [[0.6, -0.34], [0.65, -0.01]] -> only column 0 inside (0, alpha)
    # sal = g_out * mask @ w^T = [[0.5, 2.0], [0.5, 2.0]]; d l1 / d w[i, 0] = sum_rows sign(sal) = 2
    np.testing.assert_allclose(sal.numpy(), [[0.5, 2.0], [0.5, 2.0]], atol=1e-6)
    np.testing.assert_allclose(g.numpy(), [[2.0, 0.0], [2.0, 0.0]], atol=1e-6)


def test_4bit_pact_trains():
    """A tiny 4-bit PACT net learns a separable task and its alpha receives gradient."""
    tf.keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    x = rng.normal(size=(128, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    inp = tf.keras.Input((4,))
    h = PACT(bits=4, alpha_init=1.0, eta=1e-4, name="act")(tf.keras.layers.Dense(16)(inp))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2, activation="softmax")(h))
    model.compile(tf.keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=15, batch_size=32, verbose=0).history["loss"]
    assert hist[-1] < 0.5 * hist[0]
    assert float(model.get_layer("act").alpha) != pytest.approx(1.0, abs=1e-3)
