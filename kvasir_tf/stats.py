"""How sure a figure is: 95 % intervals for the comparison's rows and paired tests between rows.

Test splits here are small (48-141 images: one image is 0.7-2 points), so a figure without an
interval invites reading noise as a gain.

- Proportions (accuracy, top-1 agreement): Wilson score intervals (``scipy.stats.binomtest``).
- Macro sensitivity/specificity/F1 and MCC have no closed form: percentile bootstrap over the
  test images (``scipy.stats.bootstrap``). When the split is grouped (patches cut from one source
  image are not independent) whole source images are resampled, so the interval is not too narrow.
- Two rows on the same test images: McNemar's exact test on the images exactly one row gets
  right (a two-sided binomial test of the discordant pairs against 1/2).

The only hand-written part is :func:`confusion_metrics`, the metrics of ``kvasir_tf.metrics``
computed for thousands of resampled confusion matrices at once (sklearn scores one at a time);
a test holds it equal to ``metrics.classification_report``.
"""
from __future__ import annotations

import numpy as np

from kvasir_tf.errors import KvasirError

CONFIDENCE = 0.95
N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0          # the same resamples for every row, so rows' intervals are comparable
MACRO_KEYS = ("macro_sensitivity", "macro_specificity", "macro_f1", "mcc")


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple:
    """Wilson score interval (low, high) for k successes out of n."""
    from scipy.stats import binomtest
    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise KvasirError(f"a proportion needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    ci = binomtest(k, n).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _ratio(num, den):
    """num / den with 0/0 -> 0 (sklearn's zero_division=0, as in kvasir_tf.metrics)."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def confusion_metrics(cm) -> dict:
    """Accuracy, macro sensitivity/specificity/F1 (over the classes present) and MCC of
    confusion matrices ``cm`` [..., k, k] (rows true, columns predicted; counts or weights)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support, predicted = cm.sum(-1), cm.sum(-2)
    total = support.sum(-1)
    fn, fp = support - tp, predicted - tp
    tn = total[..., None] - tp - fn - fp
    present = support > 0
    n_present = present.sum(-1)

    def macro(values):
        return _ratio((values * present).sum(-1), n_present)

    sens, prec = _ratio(tp, support), _ratio(tp, predicted)
    correct = tp.sum(-1)
    # Matthews' multi-class form, as sklearn.metrics.matthews_corrcoef computes it.
    cov = correct * total - (predicted * support).sum(-1)
    den = np.sqrt((total ** 2 - (predicted ** 2).sum(-1)) * (total ** 2 - (support ** 2).sum(-1)))
    return {"accuracy": _ratio(correct, total),
            "macro_sensitivity": macro(sens),
            "macro_specificity": macro(_ratio(tn, tn + fp)),
            "macro_f1": macro(_ratio(2 * prec * sens, prec + sens)),
            "mcc": _ratio(cov, den)}


def _group_index(n: int, groups) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    if len(groups) != n:
        raise KvasirError(f"{len(groups)} group ids for {n} test images; pass one per image")
    return np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1].reshape(-1)


def bootstrap_intervals(y_true, y_pred, num_classes: int, *, groups=None, keys=MACRO_KEYS,
                        n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                        seed: int = BOOTSTRAP_SEED) -> dict:
    """{metric: (low, high)}: percentile bootstrap of the metrics in ``keys`` over the test
    images, or over whole groups of them when ``groups`` (one id per image) is given."""
    from scipy.stats import bootstrap
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise KvasirError(f"bootstrap needs as many predictions as labels (> 0), got "
                          f"{y_pred.size} and {y_true.size}")
    k = int(num_classes)
    gi = _group_index(y_true.size, groups)
    n_groups = int(gi.max()) + 1
    cell = y_true * k + y_pred                     # each image's cell of the confusion matrix

    def statistic(drawn, axis=-1):
        drawn = np.asarray(drawn, np.int64).reshape(-1, n_groups)       # [B, G] group draws
        b = drawn.shape[0]
        times = np.zeros((b, n_groups))
        np.add.at(times, (np.arange(b)[:, None], drawn), 1.0)          # how often each group
        weights = times[:, gi]                                         # [B, n] per image
        flat = (np.arange(b)[:, None] * k * k + cell[None, :]).ravel()
        cm = np.bincount(flat, weights.ravel(), minlength=b * k * k).reshape(b, k, k)
        m = confusion_metrics(cm)
        return np.stack([m[key] for key in keys])

    res = bootstrap((np.arange(n_groups),), statistic, vectorized=True, n_resamples=n_resamples,
                    confidence_level=confidence, method="percentile", rng=seed)
    low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
    return {key: (float(lo), float(hi)) for key, lo, hi in zip(keys, low, high)}


def mcnemar_exact(y_true, pred_a, pred_b) -> dict:
    """McNemar's exact test of rows a and b on the same images.

    ``a_only``/``b_only``: images only a / only b classifies correctly; ``p_value``: two-sided
    binomial test of a_only against n/2 for n discordant images (1.0 when there are none);
    ``difference_points``: accuracy of b minus a, in points."""
    from scipy.stats import binomtest
    y, a, b = (np.asarray(v).reshape(-1) for v in (y_true, pred_a, pred_b))
    if not (a.shape == b.shape == y.shape) or y.size == 0:
        raise KvasirError(f"McNemar's test needs both rows' predictions on the same test images, "
                          f"got {a.size} and {b.size} predictions for {y.size} labels")
    a_ok, b_ok = a == y, b == y
    a_only, b_only = int(np.sum(a_ok & ~b_ok)), int(np.sum(b_ok & ~a_ok))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p_value": p, "n": int(y.size),
            "difference_points": 100.0 * float(b_ok.mean() - a_ok.mean())}


def row_intervals(row: dict, num_classes: int, *, groups=None, **kw) -> dict:
    """{figure: [low, high]} for a comparison row holding ``labels`` and ``predictions``."""
    y, p = np.asarray(row["labels"]), np.asarray(row["predictions"])
    out = {"accuracy": list(wilson(int(np.sum(y == p)), y.size))}
    out.update({key: list(ci) for key, ci in
                bootstrap_intervals(y, p, num_classes, groups=groups, **kw).items()})
    return out


def mean_std(values) -> tuple:
    """(mean, sample standard deviation) over repeats; std is None for a single value."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)
