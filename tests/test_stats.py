"""stats.py: Wilson intervals, the vectorised metrics behind the bootstrap, the bootstrap itself
(including resampling whole source images) and McNemar's exact test, against values by hand."""
import math
import warnings

import numpy as np
import pytest

from kvasir_tf import metrics, stats
from kvasir_tf.errors import KvasirError


def _wilson_by_formula(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(8, 10), (0, 12), (12, 12), (108, 141), (38, 48)])
def test_wilson_matches_the_score_formula(k, n):
    lo, hi = stats.wilson(k, n)
    assert (lo, hi) == pytest.approx(_wilson_by_formula(k, n), abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_rejects_impossible_counts():
    for k, n in ((1, 0), (5, 4), (-1, 3)):
        with pytest.raises(KvasirError, match="0 <= k <= n"):
            stats.wilson(k, n)


def test_confusion_metrics_equal_classification_report():
    """The bootstrap's vectorised metrics are the report's, including classes absent from the
    labels (macro over the classes present) and the 0/0 cases."""
    rng = np.random.default_rng(3)
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # sklearn: a single label in tiny cases
        for _ in range(150):
            k, n = int(rng.integers(2, 7)), int(rng.integers(1, 30))
            y = rng.integers(0, k - 1 if k > 2 and rng.random() < 0.3 else k, n)   # sometimes a class absent
            p = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
            r = metrics.classification_report(y, p, [str(i) for i in range(k)])
            m = stats.confusion_metrics(np.array(r["confusion_matrix"]))
            for key, value in m.items():
                assert value == pytest.approx(r[key], abs=1e-12), key
            checked += 1
    assert checked == 150
    # Batched: [B, k, k] gives one value per matrix.
    cms = np.array([[[5, 0], [0, 5]], [[0, 5], [5, 0]], [[3, 2], [1, 4]]])
    m = stats.confusion_metrics(cms)
    assert m["accuracy"].tolist() == pytest.approx([1.0, 0.0, 0.7])
    assert m["mcc"].tolist() == pytest.approx([1.0, -1.0, metrics.classification_report(
        [0, 0, 0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0, 1, 1, 1, 1], ["a", "b"])["mcc"]])


def _labels(n, k=4, acc=0.75, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    wrong = (y + rng.integers(1, k, n)) % k
    return y, np.where(rng.random(n) < acc, y, wrong)


def test_bootstrap_interval_brackets_the_estimate_and_shrinks_with_n():
    y, p = _labels(120)
    full = metrics.classification_report(y, p, list("abcd"))
    ci = stats.bootstrap_intervals(y, p, 4)
    assert set(ci) == set(stats.MACRO_KEYS)
    for key, (lo, hi) in ci.items():
        assert lo < full[key] < hi, key
    # Four times the images: about half the width (1 / sqrt(4)).
    y4, p4 = np.tile(y, 4), np.tile(p, 4)
    ci4 = stats.bootstrap_intervals(y4, p4, 4)
    ratio = (ci4["mcc"][1] - ci4["mcc"][0]) / (ci["mcc"][1] - ci["mcc"][0])
    assert 0.4 < ratio < 0.62
    # Same seed, same resamples: the call is reproducible.
    assert stats.bootstrap_intervals(y, p, 4) == ci


def test_grouped_bootstrap_resamples_whole_groups():
    """Each image copied 4 times is no more information: resampling the copies as one group
    gives the width of the original, resampling them one by one a falsely narrow interval."""
    y, p = _labels(60, seed=1)
    base = stats.bootstrap_intervals(y, p, 4)["macro_sensitivity"]
    y4, p4 = np.repeat(y, 4), np.repeat(p, 4)
    groups = np.repeat([f"src{i}" for i in range(60)], 4)
    grouped = stats.bootstrap_intervals(y4, p4, 4, groups=groups)["macro_sensitivity"]
    naive = stats.bootstrap_intervals(y4, p4, 4)["macro_sensitivity"]
    width = lambda ci: ci[1] - ci[0]   # noqa: E731
    assert width(grouped) == pytest.approx(width(base), rel=0.15)
    assert width(naive) < 0.65 * width(grouped)
    with pytest.raises(KvasirError, match="one per image"):
        stats.bootstrap_intervals(y4, p4, 4, groups=groups[:-1])


def test_bootstrap_of_perfect_predictions_is_a_point():
    y = np.arange(40) % 3
    for lo, hi in stats.bootstrap_intervals(y, y, 3).values():
        assert lo == hi == 1.0


def test_mcnemar_exact_by_hand():
    y = np.zeros(30, int)
    a = np.zeros(30, int)          # right everywhere ...
    b = np.zeros(30, int)
    a[:1] = 1                      # ... except image 0: a wrong, b right  -> b_only = 1
    b[1:10] = 1                    # images 1..9: b wrong, a right         -> a_only = 9
    t = stats.mcnemar_exact(y, a, b)
    assert (t["a_only"], t["b_only"], t["n"]) == (9, 1, 30)
    # Two-sided exact: 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * 11 / 1024.
    assert t["p_value"] == pytest.approx(22 / 1024)
    assert t["difference_points"] == pytest.approx(100 * (21 / 30 - 29 / 30))
    swapped = stats.mcnemar_exact(y, b, a)
    assert (swapped["a_only"], swapped["b_only"]) == (1, 9)
    assert swapped["p_value"] == pytest.approx(t["p_value"])
    # Concordant rows (even with different wrong answers): nothing to test, p = 1.
    same = stats.mcnemar_exact([0, 1, 2], [0, 2, 1], [0, 1, 1])
    assert (same["a_only"], same["b_only"]) == (0, 1)
    assert stats.mcnemar_exact([0, 1, 2], [0, 2, 2], [0, 0, 2])["p_value"] == 1.0
    with pytest.raises(KvasirError, match="same test images"):
        stats.mcnemar_exact([0, 1, 2], [0, 1], [0, 1, 2])


def test_row_intervals_and_mean_std():
    y, p = _labels(50, k=3, seed=2)
    row = {"labels": y.tolist(), "predictions": p.tolist()}
    ci = stats.row_intervals(row, 3)
    assert ci["accuracy"] == pytest.approx(list(stats.wilson(int((y == p).sum()), 50)))
    assert set(ci) == {"accuracy", *stats.MACRO_KEYS}
    assert stats.mean_std([0.5, 0.7, 0.9]) == pytest.approx((0.7, 0.2))
    assert stats.mean_std([0.5]) == (0.5, None)
    assert stats.mean_std([]) == (None, None)
