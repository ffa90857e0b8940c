"""The cheaper saliency-guided step: same weights as the old step, one trace, stale saliency."""
import numpy as np
import pytest

import kvasir_tf  # noqa: F401  (Keras 2 before tensorflow)
import tensorflow as tf

from kvasir_tf.errors import KvasirError
from kvasir_tf.qat import apply_qat
from kvasir_tf.saliency_training import SaliencyGuidedModel
from tests.reference_sgt_step import ReferenceSaliencyGuidedModel, old_gradients, old_pact
from tests.test_saliency_training import colour_data, linear_model, tiny_cnn
from tests.tiny_models import tiny_pact_cnn

STEPS = 3
SIZE = 16


def _train(cls, x, y, **kwargs):
    """STEPS Adam steps of a seeded tiny PACT-QAT model; (weights, non-trainables, logs)."""
    model = apply_qat(tiny_pact_cnn(size=SIZE, seed=3), "pact")
    sgt = cls(model, **kwargs)
    sgt.compile(tf.keras.optimizers.Adam(1e-2), loss=tf.keras.losses.SparseCategoricalCrossentropy())
    logs = [sgt.train_on_batch(x[8 * i:8 * (i + 1)], y[8 * i:8 * (i + 1)], return_dict=True)
            for i in range(STEPS)]
    return ([v.numpy() for v in model.trainable_variables],
            [v.numpy() for v in model.non_trainable_variables], logs)


@pytest.mark.parametrize("kwargs", [{}, {"mask_value": "noise", "mask_scope": "batch"},
                                    {"lambda2": 10.0}])
def test_step_trains_to_the_old_steps_weights(kwargs):
    """The old step (full sort of the mask keys) and the new one (one selection per row) mask
    the same pixels: bit-identical weights, statistics and logs after STEPS steps. With
    lambda2 > 0 the double backprop's gradient sums add in another order: within rtol 1e-5."""
    x, y = colour_data(8 * STEPS, size=SIZE, seed=4)
    new = _train(SaliencyGuidedModel, x, y, **kwargs)
    old = _train(ReferenceSaliencyGuidedModel, x, y, **kwargs)
    for a, b in zip(new[0] + new[1], old[0] + old[1]):
        if kwargs.get("lambda2"):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(a, b)
    for a, b in zip(new[2], old[2]):
        assert a["masked_fraction"] == b["masked_fraction"] and a["eps"] == b["eps"]
        assert a["loss"] == pytest.approx(b["loss"], rel=0 if not kwargs.get("lambda2") else 1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(new[0], _initial()))  # it trained


def _initial():
    return [v.numpy() for v in apply_qat(tiny_pact_cnn(size=SIZE, seed=3), "pact").trainable_variables]


def test_cheaper_gradients_train_to_the_old_weights_within_float_rounding():
    """Old step with the old plain-op fake-quant gradient vs the new step with TensorFlow's fused
    gradient op: the per-pixel gradients are equal; only the range (PACT alpha) sums add in
    another order, so weights agree to float rounding (rtol 1e-4 after STEPS Adam steps, with
    lambda2 > 0 so the second derivative is compared too)."""
    x, y = colour_data(8 * STEPS, size=SIZE, seed=5)
    new = _train(SaliencyGuidedModel, x, y, lambda2=10.0)
    with old_gradients():
        old = _train(ReferenceSaliencyGuidedModel, x, y, lambda2=10.0)
    for a, b in zip(new[0] + new[1], old[0] + old[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(new[2], old[2]):
        assert a["masked_fraction"] == b["masked_fraction"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


@pytest.mark.parametrize("lambda2", [0.0, 10.0])
def test_fused_pact_gradient_trains_to_the_old_weights(lambda2):
    """PACT's gradient as TensorFlow's fused fake-quant gradient op, and no second fake quant
    after PACT in the QAT model, vs the old hand-written gradient and the second fake quant:
    the per-pixel gradients are equal (a pre-activation exactly at alpha, where the two differ,
    does not occur) and the forward is the same, so the weights agree to float rounding of the
    alpha sums (bit-identical on the machine that wrote this; asserted within rtol 1e-5)."""
    x, y = colour_data(8 * STEPS, size=SIZE, seed=6)
    new = _train(SaliencyGuidedModel, x, y, lambda2=lambda2)
    with old_pact():
        old = _train(SaliencyGuidedModel, x, y, lambda2=lambda2)
    for a, b in zip(new[0] + new[1], old[0] + old[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(new[2], old[2]):
        assert a["masked_fraction"] == b["masked_fraction"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(new[0], _initial()))  # it trained


def _training_graph_ops(x):
    """Op types of one forward + weight gradient of a fresh tiny PACT-QAT model, traced here."""
    model = apply_qat(tiny_pact_cnn(size=SIZE, seed=3), "pact")

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    return [op.type for op in step.get_concrete_function(tf.constant(x)).graph.get_operations()]


def test_a_qat_pact_layer_is_one_fake_quant_each_way():
    """One FakeQuant op per PACT layer forward (the old model had two) and one fused gradient
    op backward, with none of the old gradient's plain ops."""
    x, _ = colour_data(8, size=SIZE, seed=7)
    n_pact = 2                                    # tiny_pact_cnn
    new = _training_graph_ops(x)
    with old_pact():
        old = _training_graph_ops(x)
    assert old.count("FakeQuantWithMinMaxVars") - new.count("FakeQuantWithMinMaxVars") == n_pact
    assert new.count("FakeQuantWithMinMaxVarsGradient") == old.count("FakeQuantWithMinMaxVarsGradient")
    assert "LogicalAnd" in old and "LogicalAnd" not in new


def test_two_fits_do_not_retrace_the_step():
    """Training calls fit() once per epoch and re-seeds the mask generator: the second epoch
    reuses the first's trace (the first call traces twice: once more after it creates the
    optimizer's variables, as every tf.function that creates variables does)."""
    x, y = colour_data(16, seed=6)
    sgt = SaliencyGuidedModel(tiny_cnn(seed=6))
    sgt.compile(tf.keras.optimizers.Adam(1e-2), loss=tf.keras.losses.SparseCategoricalCrossentropy())
    counts = []
    for epoch in range(2):
        sgt.rng.reset_from_seed(epoch)  # as training does each epoch
        sgt.fit(x, y, batch_size=8, initial_epoch=epoch, epochs=epoch + 1, verbose=0)
        counts.append(sgt.train_function.experimental_get_tracing_count())
    assert counts[0] <= 2 and counts[1] == counts[0]


def _stale_run(every, x, y):
    model = linear_model(4, seed=7)
    sgt = SaliencyGuidedModel(model, saliency_every=every)
    sgt.compile(tf.keras.optimizers.SGD(0.1), loss=tf.keras.losses.SparseCategoricalCrossentropy())
    logs, maps = [], []
    for i in range(4):
        logs.append(sgt.train_on_batch(x[4 * i:4 * (i + 1)], y[4 * i:4 * (i + 1)], return_dict=True))
        maps.append(sgt._stale_map.numpy().copy() if every > 1 else None)
    return logs, maps


def test_stale_saliency_reuses_the_last_refreshs_mean_map():
    """K = 2: steps 0 and 2 compute S (as K = 1 does at step 0) and store its batch mean;
    steps 1 and 3 mask every image by that map, so their logged mean|S| is the map's mean."""
    x, y = colour_data(16, size=4, seed=8)
    fresh, _ = _stale_run(1, x, y)
    stale, maps = _stale_run(2, x, y)
    assert stale[0] == fresh[0]                      # step 0 refreshes: the same step
    assert not np.array_equal(maps[1], maps[2])      # step 2 refreshed the map
    np.testing.assert_array_equal(maps[0], maps[1])  # step 1 did not
    for step in (1, 3):
        assert stale[step]["l1"] == pytest.approx(float(maps[step].mean()), rel=1e-6)
        assert stale[step]["masked_fraction"] == pytest.approx(0.5)
    assert stale[1]["l1"] != pytest.approx(fresh[1]["l1"], rel=1e-3)


@pytest.mark.parametrize("kwargs", [dict(saliency_every=0), dict(saliency_every=1.5),
                                    dict(saliency_every=2, lambda2=1.0)])
def test_stale_saliency_arguments_are_checked(kwargs):
    with pytest.raises(KvasirError):
        SaliencyGuidedModel(linear_model(), **kwargs)
