"""Whether a model's confidence can be trusted: calibration error, temperature scaling and
selective prediction (abstaining below a confidence threshold).

A quantized model's softmax sits on a grid (int8: steps of 1/256) and may be more or less
confident than its float source: accuracy alone does not show that. Everything here takes
probabilities ``[N, C]`` (an int8 model's dequantized outputs) and labels ``[N]``.

- ECE uses **equal-mass** bins (each bin holds the same number of images, to one): with 50-150
  test images, equal-width bins leave most bins empty or holding a handful of images. The bins
  are cut by rank, not by ``sklearn.calibration.calibration_curve(strategy="quantile")``, whose
  quantile edges merge bins when confidences tie (int8 outputs tie often) and which returns no
  bin counts to weight by.
- Brier score and NLL are the definitions of scikit-learn's ``brier_score_loss`` (with
  ``labels``) and ``log_loss``, written in numpy so the bootstrap can call them thousands of
  times (a test holds them equal to scikit-learn's).
- Temperature scaling divides the logits by ``T``; the models here end in a softmax, so the
  logits are ``log p`` (up to a constant per image, which softmax ignores) and the scaled
  probabilities are ``p ** (1/T)`` renormalised, after flooring ``p`` at :func:`prob_floor`
  (half an output step for an int8 model, whose smallest non-zero output is one step). The
  firmware and the Android app compute exactly this (golden vectors pin the three).
"""
from __future__ import annotations

import numpy as np

from kvasir_tf.errors import KvasirError
from kvasir_tf.stats import BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES, _group_index

ECE_BINS = 10                    # equal-mass bins: ~14 images a bin on 141 test patches
FLOAT_PROB_FLOOR = 1e-7          # a float softmax's floor before taking logs
TEMPERATURE_BOUNDS = (0.05, 20.0)
DEFAULT_TARGET_ACCURACY = 0.9    # selective prediction: the accuracy the threshold aims for
FIGURES = ("ece", "classwise_ece", "brier", "nll")


def prob_floor(output_scale=None) -> float:
    """The floor under probabilities: half an output step for a quantized output, else 1e-7."""
    return float(output_scale) / 2.0 if output_scale else FLOAT_PROB_FLOOR


def _check(probs, labels):
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.size or y.size == 0:
        raise KvasirError(f"calibration needs probabilities [N, C] and N labels (N > 0), got "
                          f"{p.shape} and {y.size} labels")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise KvasirError(f"labels must lie in 0..{p.shape[1] - 1} for {p.shape[1]} output columns")
    return p, y


def _binned_gap(conf, hit, bins: int) -> np.ndarray:
    """sum_b (n_b / N) |mean(hit_b) - mean(conf_b)| over equal-mass bins, per column of
    ``conf``/``hit`` [N, K]: image of rank r (by confidence) falls in bin floor(r * bins / N)."""
    m = conf.shape[0]
    order = np.argsort(conf, axis=0, kind="stable")
    d = np.take_along_axis(hit - conf, order, axis=0)
    starts = np.unique((np.arange(m) * min(int(bins), m)) // m, return_index=True)[1]
    return np.abs(np.add.reduceat(d, starts, axis=0)).sum(axis=0) / m


def _figures(p, y, floor: float, bins: int) -> np.ndarray:
    """ECE, classwise ECE, Brier, NLL (the order of FIGURES) of checked arrays; numpy only, so
    the bootstrap can afford thousands of calls (tests hold Brier and NLL equal to sklearn's)."""
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1.0
    top = p.argmax(axis=1)
    top_ece = _binned_gap(p.max(axis=1)[:, None], (top == y).astype(np.float64)[:, None], bins)[0]
    class_ece = _binned_gap(p, onehot, bins).mean()
    brier_score = np.mean(np.sum((p - onehot) ** 2, axis=1))
    q = np.maximum(p, floor)
    nll_value = -np.mean(np.log(q[np.arange(y.size), y] / q.sum(axis=1)))
    return np.array([top_ece, class_ece, brier_score, nll_value])


def ece(probs, labels, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error: confidence = max p, hit = argmax is the label."""
    return float(_figures(*_check(probs, labels), FLOAT_PROB_FLOOR, bins)[0])


def classwise_ece(probs, labels, bins: int = ECE_BINS) -> float:
    """Mean over classes of the ECE of p_c against 1[label = c] (Kull et al., 2019)."""
    return float(_figures(*_check(probs, labels), FLOAT_PROB_FLOOR, bins)[1])


def brier(probs, labels) -> float:
    """Multi-class Brier score: mean over images of sum_c (p_c - 1[label = c])^2."""
    return float(_figures(*_check(probs, labels), FLOAT_PROB_FLOOR, ECE_BINS)[2])


def nll(probs, labels, floor: float = FLOAT_PROB_FLOOR) -> float:
    """Mean negative log-likelihood of the label, probabilities floored at ``floor`` (and
    renormalised), so a zero for the label costs -log(floor) instead of infinity."""
    return float(_figures(*_check(probs, labels), floor, ECE_BINS)[3])


def figures(probs, labels, *, floor: float = FLOAT_PROB_FLOOR, bins: int = ECE_BINS) -> dict:
    """ECE, classwise ECE, Brier and NLL of one set of probabilities."""
    return dict(zip(FIGURES, map(float, _figures(*_check(probs, labels), floor, bins))))


def figure_intervals(probs, labels, *, floor: float = FLOAT_PROB_FLOOR, bins: int = ECE_BINS,
                     groups=None, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                     seed: int = BOOTSTRAP_SEED) -> dict:
    """{figure: (low, high)}: percentile bootstrap over the images, or over whole source images
    when ``groups`` (one id per image) is given, as ``kvasir_tf.stats`` does for MCC."""
    p, y = _check(probs, labels)
    low, high = _bootstrap(y.size, groups, lambda idx: _figures(p[idx], y[idx], floor, bins),
                           n_resamples, confidence, seed)
    return {k: (float(lo), float(hi)) for k, lo, hi in zip(FIGURES, low, high)}


def _bootstrap(n_images: int, groups, figures_of, n_resamples, confidence, seed) -> tuple:
    """Percentile interval (low, high arrays) of ``figures_of(image indices)`` over resamples of
    the images, or of whole groups of them (every image of a drawn group, as often as drawn)."""
    from scipy.stats import bootstrap
    gi = _group_index(n_images, groups)
    n_groups = int(gi.max()) + 1
    images = np.arange(n_images)

    def statistic(drawn):
        return figures_of(np.repeat(images, np.bincount(np.asarray(drawn, np.int64), minlength=n_groups)[gi]))

    res = bootstrap((np.arange(n_groups),), statistic, vectorized=False, n_resamples=n_resamples,
                    confidence_level=confidence, method="percentile", rng=seed)
    return res.confidence_interval


def reliability(probs, labels, bins: int = ECE_BINS) -> dict:
    """The reliability diagram's points: per equal-mass bin of top-label confidence, its mean
    confidence, its accuracy and its image count (the ECE is their weighted mean gap)."""
    p, y = _check(probs, labels)
    conf = p.max(axis=1)
    order = np.argsort(conf, kind="stable")
    hit = (p.argmax(axis=1) == y)[order].astype(np.float64)
    m = y.size
    bin_of = (np.arange(m) * min(int(bins), m)) // m
    count = np.bincount(bin_of)
    return {"confidence": np.bincount(bin_of, conf[order]) / count,
            "accuracy": np.bincount(bin_of, hit) / count, "count": count}


def paired_differences(probs_a, probs_b, labels, *, floor_a: float = FLOAT_PROB_FLOOR,
                       floor_b: float = FLOAT_PROB_FLOOR, bins: int = ECE_BINS, groups=None,
                       n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = BOOTSTRAP_SEED) -> dict:
    """{figure: {"difference": b - a, "interval": [low, high]}} for two models on the SAME images:
    both are scored on each resample, so the interval is of the paired difference (narrower than
    comparing two separate intervals). An interval excluding 0 is a difference this test set sees."""
    pa, y = _check(probs_a, labels)
    pb, _ = _check(probs_b, labels)
    if pa.shape != pb.shape:
        raise KvasirError(f"paired figures need both models' outputs on the same images, got "
                          f"{pa.shape} and {pb.shape}")

    def difference(idx):
        return _figures(pb[idx], y[idx], floor_b, bins) - _figures(pa[idx], y[idx], floor_a, bins)

    low, high = _bootstrap(y.size, groups, difference, n_resamples, confidence, seed)
    return {k: {"difference": float(d), "interval": [float(lo), float(hi)]}
            for k, d, lo, hi in zip(FIGURES, difference(np.arange(y.size)), low, high)}


# -- temperature scaling ----------------------------------------------------------------------
def apply_temperature(probs, temperature: float, floor: float = FLOAT_PROB_FLOOR) -> np.ndarray:
    """softmax(log(max(p, floor)) / T): ``p ** (1/T)`` renormalised, computed in log space."""
    t = float(temperature)
    if not t > 0:
        raise KvasirError(f"temperature must be > 0, got {temperature}")
    z = np.log(np.maximum(np.asarray(probs, dtype=np.float64), floor)) / t
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(probs, labels, floor: float = FLOAT_PROB_FLOOR) -> float:
    """The T minimising the NLL of ``labels`` (fit it on the VALIDATION split, never test)."""
    from scipy.optimize import minimize_scalar
    p, y = _check(probs, labels)
    logp = np.log(np.maximum(p, floor))

    def loss(log_t):
        z = logp / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(y.size), y]))

    lo, hi = np.log(TEMPERATURE_BOUNDS)
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


# -- selective prediction --------------------------------------------------------------------
def risk_coverage(probs, labels) -> dict:
    """Accuracy and coverage as the confidence threshold rises: keeping the k most confident
    images for k = N..1, where images of equal confidence (common on an int8 grid) are kept or
    dropped together, as a device thresholding them would; so the curve steps at each distinct
    confidence and its order among ties does not matter. ``aurc`` is the mean selective risk
    (1 - accuracy) over k, the area under the risk-coverage curve (lower is better)."""
    p, y = _check(probs, labels)
    conf = p.max(axis=1)
    order = np.argsort(-conf, kind="stable")
    hit = (p.argmax(axis=1) == y)[order].astype(np.float64)
    conf = conf[order]
    # Each position's last index among its ties: the cut a threshold at its confidence makes.
    ends = np.flatnonzero(np.append(conf[1:] < conf[:-1], True))
    end_of = ends[np.searchsorted(ends, np.arange(y.size))]
    kept = end_of + 1
    accuracy = np.cumsum(hit)[end_of] / kept
    return {"threshold": conf, "coverage": kept / y.size, "accuracy": accuracy,
            "aurc": float(np.mean(1.0 - accuracy))}


def threshold_for_accuracy(probs, labels, target: float = DEFAULT_TARGET_ACCURACY) -> dict:
    """The confidence threshold whose kept images reach ``target`` accuracy with the most
    coverage, chosen on validation: halfway between the last kept confidence and the next lower
    one (the last kept one when every image is kept). ``threshold`` is None when no non-empty set of
    the most confident images reaches it: the device would then have to abstain on everything."""
    if not 0.0 < float(target) <= 1.0:
        raise KvasirError(f"target accuracy must be in (0, 1], got {target}")
    rc = risk_coverage(probs, labels)
    ok = np.flatnonzero(rc["accuracy"] >= float(target) - 1e-12)
    if ok.size == 0:
        return {"target": float(target), "threshold": None, "coverage": 0.0, "accuracy": None}
    i = int(ok[-1])
    # Halfway to the next lower confidence: the same images are kept on validation, and a device
    # computing in float32 does not flip an image that sits exactly at the cut.
    conf = rc["threshold"]
    lower = conf[conf < conf[i]]
    cut = float(conf[i]) if lower.size == 0 else float(conf[i] + lower[0]) / 2.0
    return {"target": float(target), "threshold": cut,
            "coverage": float(rc["coverage"][i]), "accuracy": float(rc["accuracy"][i])}


def selective(probs, labels, threshold) -> dict:
    """Coverage and accuracy on the images whose confidence is >= ``threshold`` (a threshold
    chosen on validation, applied to test)."""
    p, y = _check(probs, labels)
    if threshold is None:
        return {"threshold": None, "coverage": 0.0, "accuracy": None, "n_kept": 0}
    kept = p.max(axis=1) >= float(threshold)
    n = int(kept.sum())
    acc = float((p.argmax(axis=1)[kept] == y[kept]).mean()) if n else None
    return {"threshold": float(threshold), "coverage": n / y.size, "accuracy": acc, "n_kept": n}


# -- what a deployed model carries, and what a report shows ------------------------------------
def calibrate(probs, labels, *, floor: float = FLOAT_PROB_FLOOR,
              target: float = DEFAULT_TARGET_ACCURACY) -> dict:
    """Fit on the VALIDATION split what a device applies: the temperature, then the confidence
    threshold (on the temperature-scaled probabilities) below which it answers "uncertain"."""
    p, y = _check(probs, labels)
    t = fit_temperature(p, y, floor)
    pick = threshold_for_accuracy(apply_temperature(p, t, floor), y, target)
    return {"temperature": t, "abstain_below": pick["threshold"], "target_accuracy": float(target),
            "val_coverage": pick["coverage"], "val_accuracy": pick["accuracy"],
            "fitted_on": "val", "n": int(y.size), "floor": float(floor)}


def report(probs, labels, *, floor: float = FLOAT_PROB_FLOOR, fitted: dict | None = None,
           groups=None, bins: int = ECE_BINS, n_resamples: int = N_RESAMPLES) -> dict:
    """Calibration and selective prediction of one artifact on one (test) split.

    ``fitted``: :func:`calibrate` on validation; without it only the raw figures are given."""
    p, y = _check(probs, labels)

    def block(q):
        point = dict(zip(FIGURES, map(float, _figures(q, y, floor, bins))))
        ci = figure_intervals(q, y, floor=floor, bins=bins, groups=groups, n_resamples=n_resamples)
        rc = risk_coverage(q, y)
        return {**point, "intervals": {k: list(v) for k, v in ci.items()}, "aurc": rc["aurc"]}

    out = {"bins": int(bins), "binning": "equal-mass", "n": int(y.size), "floor": float(floor),
           "resampled": "test images" if groups is None else "source images", "raw": block(p)}
    if fitted:
        q = apply_temperature(p, fitted["temperature"], floor)
        out.update(temperature=float(fitted["temperature"]), scaled=block(q),
                   selective=selective(q, y, fitted.get("abstain_below")),
                   target_accuracy=fitted.get("target_accuracy"))
    return out


def format_report(rep: dict) -> str:
    """The lines ``kvasir-evaluate`` prints."""
    def line(name, b):
        ci = b["intervals"]
        return (f"  {name:<16} ECE {b['ece']:.3f} [{ci['ece'][0]:.3f}, {ci['ece'][1]:.3f}]  "
                f"classwise {b['classwise_ece']:.3f}  Brier {b['brier']:.3f} "
                f"[{ci['brier'][0]:.3f}, {ci['brier'][1]:.3f}]  NLL {b['nll']:.3f} "
                f"[{ci['nll'][0]:.3f}, {ci['nll'][1]:.3f}]  AURC {b['aurc']:.3f}")
    lines = [f"calibration ({rep['bins']} {rep['binning']} bins, n {rep['n']}, 95 % bootstrap "
             f"intervals):", line("raw", rep["raw"])]
    if "scaled" in rep:
        lines.append(line(f"T = {rep['temperature']:.3f}", rep["scaled"]))
        s = rep["selective"]
        if s["threshold"] is None:
            lines.append(f"  selective: no threshold reached {rep['target_accuracy']:.0%} accuracy "
                         "on validation (the device would answer \"uncertain\" to every image)")
        else:
            acc = "n/a" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
            lines.append(f"  selective: uncertain below {s['threshold']:.3f} (chosen on validation "
                         f"for {rep['target_accuracy']:.0%}): coverage {s['coverage']:.3f} "
                         f"({s['n_kept']} of {rep['n']}), accuracy {acc}")
    return "\n".join(lines)


# -- the sidecar's part: output.temperature, output.abstain_below, output.calibration -----------
def floor_of(sidecar: dict | None) -> float:
    """The probability floor for an artifact: half its output step when the output is int8."""
    return prob_floor((sidecar or {}).get("output", {}).get("scale"))


def from_sidecar(sidecar: dict | None) -> dict | None:
    """The fitted temperature and threshold a converted model carries, or None (older files)."""
    out = (sidecar or {}).get("output", {})
    if out.get("temperature") is None:
        return None
    return {**out.get("calibration", {}), "temperature": float(out["temperature"]),
            "abstain_below": out.get("abstain_below")}


def describe(fitted: dict | None) -> str:
    """One line on what :func:`calibrate` fitted (a conversion's note)."""
    if fitted is None:
        return ("no validation split to fit a temperature on: the sidecar has no output.temperature "
                "(devices use T = 1 and never answer \"uncertain\")")
    below, target = fitted["abstain_below"], f"{fitted['target_accuracy']:.0%} accuracy"
    return (f"temperature {fitted['temperature']:.3f} fitted on {fitted['n']} validation images; "
            + (f"no confidence threshold reaches {target}" if below is None else
               f"\"uncertain\" below {below:.3f} (kept {fitted['val_coverage']:.0%} of them at {target})"))


def into_sidecar(sidecar: dict, fitted: dict) -> dict:
    """``sidecar`` with ``fitted`` (:func:`calibrate`) in its output entry, as devices read it."""
    rest = {k: v for k, v in fitted.items() if k not in ("temperature", "abstain_below")}
    output = {**sidecar["output"], "temperature": float(fitted["temperature"]),
              "abstain_below": fitted["abstain_below"], "calibration": rest}
    return {**sidecar, "output": output}


# -- what a device computes from its int8 output ----------------------------------------------
UNCERTAIN = -1      # the decision when the top probability is below the abstain threshold


def device_probabilities(scores, output_scale: float, output_zero_point: int,
                         temperature: float = 1.0) -> np.ndarray:
    """The firmware's and the app's probabilities for int8 output ``scores`` [..., C]:
    dequantize, floor at half a step, temperature-scale (the reference their golden vectors pin)."""
    p = (np.asarray(scores, np.int64) - int(output_zero_point)) * float(output_scale)
    return apply_temperature(p, temperature, prob_floor(output_scale))


def decide(probs, abstain_below=None) -> np.ndarray:
    """Top-1 class per row (lowest index on ties), or UNCERTAIN where its probability is below
    ``abstain_below`` (None: never abstain)."""
    p = np.atleast_2d(np.asarray(probs, np.float64))
    top = p.argmax(axis=1)
    if abstain_below is None:
        return top
    return np.where(p[np.arange(len(p)), top] < float(abstain_below), UNCERTAIN, top)
