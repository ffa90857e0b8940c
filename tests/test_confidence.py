"""Calibration figures, temperature scaling and selective prediction against hand-computed oracles."""
import numpy as np
import pytest

from kvasir_tf import confidence as cf
from kvasir_tf.errors import KvasirError


def _probs_with_confidence(conf, labels, hit, c=4):
    """Rows whose top class has probability ``conf`` (the rest spread evenly); the top class
    is the label where ``hit`` and the next class otherwise."""
    n = len(labels)
    p = np.full((n, c), 0.0)
    for i in range(n):
        p[i, :] = (1.0 - conf[i]) / (c - 1)
        top = labels[i] if hit[i] else (labels[i] + 1) % c
        p[i, top] = conf[i]
    return p


def _sampled(logits, rng):
    """Labels drawn from softmax(logits): a perfectly calibrated model's outputs."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(len(p))[:, None]
    return p, (u > np.cumsum(p, axis=1)).sum(axis=1)


def test_ece_of_a_calibrated_set_is_near_zero():
    rng = np.random.default_rng(0)
    p, y = _sampled(rng.normal(0, 2.0, size=(20000, 5)), rng)
    assert cf.ece(p, y) < 0.015
    assert cf.classwise_ece(p, y) < 0.01


def test_ece_of_a_known_miscalibrated_set_equals_its_closed_form():
    # Half the images at confidence 0.9 with 60 % right, half at 0.6 with 90 % right: the
    # two equal-mass bins are exactly these halves, so ECE = 0.5 * 0.3 + 0.5 * 0.3 = 0.3.
    n = 500
    labels = np.arange(2 * n) % 4
    conf = np.r_[np.full(n, 0.9), np.full(n, 0.6)]
    hit = np.r_[np.arange(n) < 0.6 * n, np.arange(n) < 0.9 * n]
    p = _probs_with_confidence(conf, labels, hit)
    assert cf.ece(p, labels, bins=2) == pytest.approx(0.3, abs=1e-12)
    # One bin mixes them: |0.75 - 0.75| = 0, which is why the bin count is stated.
    assert cf.ece(p, labels, bins=1) == pytest.approx(0.0, abs=1e-12)


def test_classwise_ece_closed_form():
    # Two classes, every image p = (0.8, 0.2) and 50 % of labels are class 0: for class 0
    # |0.5 - 0.8| = 0.3, for class 1 |0.5 - 0.2| = 0.3.
    p = np.tile([0.8, 0.2], (100, 1))
    y = np.arange(100) % 2
    assert cf.classwise_ece(p, y, bins=5) == pytest.approx(0.3)


def test_brier_and_nll_match_their_definitions():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]])
    y = np.array([0, 2, 2])
    onehot = np.eye(3)[y]
    assert cf.brier(p, y) == pytest.approx(np.mean(np.sum((p - onehot) ** 2, axis=1)))
    assert cf.nll(p, y) == pytest.approx(-np.mean(np.log([0.7, 0.1, 0.5])))
    # A zero probability for the label is floored, not infinite.
    assert cf.nll(np.array([[1.0, 0.0]]), [1], floor=1e-3) == pytest.approx(
        -np.log(1e-3 / (1 + 1e-3)))


def test_brier_and_nll_equal_scikit_learns():
    from sklearn.metrics import brier_score_loss, log_loss
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(6), size=200)
    y = rng.integers(0, 6, 200)
    assert cf.brier(p, y) == pytest.approx(brier_score_loss(y, p, labels=list(range(6))))
    assert cf.nll(p, y) == pytest.approx(log_loss(y, p, labels=list(range(6))))


def test_calibrate_and_report_on_an_overconfident_model():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 1.5, size=(4000, 5))
    _, y = _sampled(logits, rng)
    hot = np.exp(logits * 2.5)
    hot /= hot.sum(axis=1, keepdims=True)
    fitted = cf.calibrate(hot[:2000], y[:2000], target=0.8)          # "validation"
    assert fitted["temperature"] == pytest.approx(2.5, rel=0.1)
    rep = cf.report(hot[2000:], y[2000:], fitted=fitted, n_resamples=200)   # "test"
    assert rep["scaled"]["ece"] < rep["raw"]["ece"] / 2
    assert rep["scaled"]["nll"] < rep["raw"]["nll"]
    # T changes how sure the model is, never which class it picks.
    assert np.array_equal(cf.apply_temperature(hot, fitted["temperature"]).argmax(1), hot.argmax(1))
    sel = rep["selective"]
    assert 0 < sel["coverage"] < 1 and sel["accuracy"] == pytest.approx(0.8, abs=0.04)
    text = cf.format_report(rep)
    assert "10 equal-mass bins" in text and "uncertain below" in text


def test_fitted_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1.5, size=(20000, 8))
    _, y = _sampled(logits, rng)
    for k in (0.5, 2.0, 3.0):          # a model k times too confident (or too timid)
        overconfident = np.exp(logits * k)
        overconfident /= overconfident.sum(axis=1, keepdims=True)
        t = cf.fit_temperature(overconfident, y)
        assert t == pytest.approx(k, rel=0.05)
        fixed = cf.apply_temperature(overconfident, t)
        assert cf.ece(fixed, y) < cf.ece(overconfident, y)


def test_apply_temperature_is_the_power_of_the_probabilities():
    p = np.array([[0.5, 0.3, 0.2, 0.0]])
    t = 2.0
    floored = np.maximum(p, 1e-3) ** (1 / t)
    np.testing.assert_allclose(cf.apply_temperature(p, t, floor=1e-3), floored / floored.sum())
    np.testing.assert_allclose(cf.apply_temperature(p, 1.0, floor=1e-3),
                               np.maximum(p, 1e-3) / np.maximum(p, 1e-3).sum())
    with pytest.raises(KvasirError, match="temperature"):
        cf.apply_temperature(p, 0.0)
    assert cf.prob_floor(1 / 256) == pytest.approx(1 / 512)
    assert cf.prob_floor(None) == cf.FLOAT_PROB_FLOOR


def test_risk_coverage_and_the_threshold_for_a_target():
    # Confidences 0.9 0.8 0.7 0.6 0.5, right, right, wrong, right, wrong.
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    y = np.zeros(5, int)
    p = _probs_with_confidence(conf, y, [True, True, False, True, False])
    rc = cf.risk_coverage(p, y)
    np.testing.assert_allclose(rc["accuracy"], [1, 1, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(rc["coverage"], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert rc["aurc"] == pytest.approx(np.mean([0, 0, 1 / 3, 1 / 4, 2 / 5]))
    best = cf.threshold_for_accuracy(p, y, target=0.75)
    assert best == {"target": 0.75, "threshold": pytest.approx(0.55), "coverage": 0.8, "accuracy": 0.75}
    assert cf.threshold_for_accuracy(p, y, target=1.0)["threshold"] == pytest.approx(0.75)
    applied = cf.selective(p, y, best["threshold"])
    assert applied["n_kept"] == 4 and applied["accuracy"] == 0.75


def test_threshold_keeps_tied_confidences_together():
    # The first two tie at 0.9 (one wrong): a cut between them is not available on a device.
    conf = np.array([0.9, 0.9, 0.8])
    y = np.zeros(3, int)
    p = _probs_with_confidence(conf, y, [True, False, True])
    assert cf.threshold_for_accuracy(p, y, target=1.0)["threshold"] is None
    got = cf.threshold_for_accuracy(p, y, target=0.6)
    assert got["threshold"] == 0.8 and got["coverage"] == 1.0
    # The curve keeps tied images together: the first two points are the pair's.
    rc = cf.risk_coverage(p, y)
    np.testing.assert_allclose(rc["coverage"], [2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(rc["accuracy"], [0.5, 0.5, 2 / 3])


def test_intervals_bracket_the_figure_and_widen_with_groups():
    rng = np.random.default_rng(2)
    p, y = _sampled(rng.normal(0, 1.0, size=(300, 3)) * 2, rng)
    point = cf.figures(p, y)
    flat = cf.figure_intervals(p, y, n_resamples=300)
    # 30 source images of 10 near-identical patches each: far fewer independent draws.
    groups = np.repeat(np.arange(30), 10)
    p_g, y_g = np.repeat(p[:30], 10, axis=0), np.repeat(y[:30], 10)
    grouped = cf.figure_intervals(p_g, y_g, groups=groups, n_resamples=300)
    naive = cf.figure_intervals(p_g, y_g, n_resamples=300)
    for k in cf.FIGURES:
        lo, hi = flat[k]
        assert lo <= point[k] <= hi
        assert grouped[k][1] - grouped[k][0] > naive[k][1] - naive[k][0]


def test_bad_input_is_a_clear_error():
    with pytest.raises(KvasirError, match="labels must lie"):
        cf.ece(np.full((2, 3), 1 / 3), [0, 3])
    with pytest.raises(KvasirError, match=r"\[N, C\]"):
        cf.brier(np.full((2, 3), 1 / 3), [0])
    with pytest.raises(KvasirError, match="target"):
        cf.threshold_for_accuracy(np.full((2, 3), 1 / 3), [0, 1], target=0)


def test_reliability_points_average_to_the_ece():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4) * 0.5, size=203)
    y = rng.integers(0, 4, 203)
    r = cf.reliability(p, y, bins=7)
    assert r["count"].sum() == 203 and r["count"].max() - r["count"].min() <= 1
    gap = np.sum(r["count"] * np.abs(r["accuracy"] - r["confidence"])) / 203
    assert gap == pytest.approx(cf.ece(p, y, bins=7))
    assert np.all(np.diff(r["confidence"]) >= 0)


def test_paired_differences_see_a_real_change_and_not_a_null_one():
    rng = np.random.default_rng(6)
    logits = rng.normal(0, 1.5, size=(600, 4))
    p, y = _sampled(logits, rng)
    hot = np.exp(logits * 3)
    hot /= hot.sum(axis=1, keepdims=True)
    d = cf.paired_differences(p, hot, y, n_resamples=300)
    assert d["ece"]["difference"] == pytest.approx(cf.ece(hot, y) - cf.ece(p, y))
    assert d["ece"]["interval"][0] > 0 and d["nll"]["interval"][0] > 0   # hotter: worse, and seen
    same = cf.paired_differences(p, p, y, n_resamples=300)
    assert same["brier"] == {"difference": 0.0, "interval": [0.0, 0.0]}
