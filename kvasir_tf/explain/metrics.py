"""How far two saliency maps agree, how faithful one is to its model, and whether it hits the lesion.

All functions take normalised maps (:mod:`kvasir_tf.explain.normalize`) of one image, [H, W];
masks are boolean [H, W] of the same size (a mask of another size is a KvasirError).

- agreement: Spearman rank correlation (scipy), SSIM (scikit-image), IoU of the top-k % pixels;
- faithfulness: deletion and insertion AUC (scikit-learn's ``auc``) beside the same curves for
  random pixel orders: a faithful map deletes the evidence faster (lower deletion AUC) and
  restores it faster (higher insertion AUC) than a random order;
- localisation: pointing game, share of saliency energy inside the mask, IoU of the top-k %
  region with the mask;
- :func:`summarize`: mean with a percentile bootstrap interval (scipy.stats.bootstrap).
"""
from __future__ import annotations

import cv2
import numpy as np

from kvasir_tf.errors import KvasirError
from kvasir_tf.preprocessing import NEUTRAL_PIXEL

DEFAULT_TOP_K = 20.0          # % of pixels in a map's "top-k region"
DEFAULT_STEPS = 16            # points of a deletion/insertion curve, besides the start
DEFAULT_RANDOM_ORDERS = 2     # random pixel orders averaged for the baseline curves
BLUR_SIGMA = 0.1              # insertion starts from the image blurred with sigma = this x side
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def _check_pair(a, b, what="maps"):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise KvasirError(f"{what} must be 2-D and of one size, got {a.shape} and {b.shape}; "
                          "normalise maps to the image size (kvasir_tf.explain.normalize)")
    return a, b


def check_mask(mask, shape, name="mask") -> np.ndarray:
    """A boolean mask of exactly ``shape`` [H, W], or a one-line error naming it."""
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise KvasirError(f"{name} is {m.shape[1::-1] if m.ndim >= 2 else m.shape} but its image/map "
                          f"is {tuple(shape)[::-1]} (width x height); give each mask its image's size")
    return m.astype(bool)


# ----------------------------------------------------------------------------- agreement
def spearman(a, b) -> float:
    """Spearman's rank correlation of two maps' pixels; nan when either map is constant."""
    from scipy.stats import spearmanr
    a, b = _check_pair(a, b)
    a, b = a.ravel(), b.ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def ssim(a, b) -> float:
    """Structural similarity of two maps in [0, 1] (scikit-image, data range 1)."""
    from skimage.metrics import structural_similarity
    a, b = _check_pair(a, b)
    win = min(7, *a.shape) // 2 * 2 + 1 if min(a.shape) >= 3 else None
    if win is None or win < 3:
        raise KvasirError(f"maps of {a.shape} are too small for SSIM; use at least 3 x 3")
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=1.0,
                                       win_size=win))


def top_k_mask(saliency, k: float = DEFAULT_TOP_K, seed: int = 0) -> np.ndarray:
    """The k % most salient pixels (exactly round(k % of the pixels); ties broken at random)."""
    if not 0 < k <= 100:
        raise KvasirError(f"top-k must be a percentage in (0, 100], got {k}")
    m = np.asarray(saliency, np.float64).ravel()
    n = max(1, int(round(m.size * k / 100.0)))
    tie = np.random.default_rng(seed).random(m.size)
    order = np.lexsort((tie, -m))            # descending saliency, random among equals
    out = np.zeros(m.size, bool)
    out[order[:n]] = True
    return out.reshape(np.shape(saliency))


def iou(a, b) -> float:
    a, b = _check_pair(np.asarray(a, bool), np.asarray(b, bool), "masks")
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def top_k_iou(a, b, k: float = DEFAULT_TOP_K) -> float:
    """IoU of the two maps' top-k % regions."""
    a, b = _check_pair(a, b)
    return iou(top_k_mask(a, k), top_k_mask(b, k))


def agreement(a, b, k: float = DEFAULT_TOP_K) -> dict:
    return {"spearman": spearman(a, b), "ssim": ssim(a, b), "top_k_iou": top_k_iou(a, b, k)}


# ----------------------------------------------------------------------------- localisation
def pointing_game(saliency, mask) -> float:
    """1.0 when the map's maximum lies in the mask, else 0.0 (nan for an all-zero map or mask).

    A plateau of equal maxima (occlusion maps are blocky) counts as a hit when most of it is
    inside, so a flat map cannot score by luck of the first pixel.
    """
    m = np.asarray(saliency, np.float64)
    mask = check_mask(mask, m.shape)
    if not mask.any() or m.max() <= 0:
        return float("nan")
    peak = m >= m.max()
    return 1.0 if mask[peak].mean() > 0.5 else 0.0


def energy_in_mask(saliency, mask) -> float:
    """Share of the map's total saliency inside the mask (a uniform map scores the mask's area)."""
    m = np.asarray(saliency, np.float64)
    mask = check_mask(mask, m.shape)
    total = m.sum()
    return float(m[mask].sum() / total) if total > 0 and mask.any() else float("nan")


def mask_top_k_iou(saliency, mask, k: float = DEFAULT_TOP_K) -> float:
    """IoU of the map's top-k % region with the mask."""
    mask = check_mask(mask, np.shape(saliency))
    return iou(top_k_mask(saliency, k), mask) if mask.any() else float("nan")


def localisation(saliency, mask, k: float = DEFAULT_TOP_K) -> dict:
    return {"pointing": pointing_game(saliency, mask), "energy_in_mask": energy_in_mask(saliency, mask),
            "mask_top_k_iou": mask_top_k_iou(saliency, mask, k),
            "mask_fraction": float(np.mean(check_mask(mask, np.shape(saliency))))}


# ----------------------------------------------------------------------------- faithfulness
def _curve_inputs(image, start, end, order, steps):
    """steps+1 images: pixels taken from ``end`` in ``order``, the rest from ``start``."""
    h, w = image.shape[:2]
    n = h * w
    batch = np.repeat(start[None].astype(np.float32), steps + 1, axis=0).reshape(steps + 1, n, -1)
    flat_end = end.astype(np.float32).reshape(n, -1)
    for i in range(1, steps + 1):
        idx = order[: int(round(n * i / steps))]
        batch[i, idx] = flat_end[idx]
    return batch.reshape(steps + 1, h, w, -1)


def _orders(saliency, n_random, seed):
    m = np.asarray(saliency, np.float64).ravel()
    rng = np.random.default_rng(seed)
    ranked = np.lexsort((rng.random(m.size), -m))
    return ranked, [rng.permutation(m.size) for _ in range(n_random)]


def deletion_insertion(predict, image, saliency, target: int, *, steps=DEFAULT_STEPS,
                       n_random=DEFAULT_RANDOM_ORDERS, seed=0) -> dict:
    """Deletion/insertion AUCs of ``saliency`` for class ``target`` and of random orders.

    ``predict``: pixels float32 [n,S,S,3] -> probabilities [n,C] (any explain predictor).
    Deletion replaces pixels, most salient first, by neutral grey (the model's input 0);
    insertion starts from the image blurred (sigma = 0.1 x side) and puts the pixels back.
    """
    from sklearn.metrics import auc
    image = np.asarray(image, np.float32)
    saliency = np.asarray(saliency)
    if saliency.shape != image.shape[:2]:
        raise KvasirError(f"saliency map {saliency.shape} does not match its image {image.shape[:2]}")
    grey = np.full_like(image, NEUTRAL_PIXEL)
    blurred = cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA * image.shape[0])
    ranked, randoms = _orders(saliency, n_random, seed)
    batches = []
    for order in [ranked, *randoms]:
        batches.append(_curve_inputs(image, image, grey, order, steps))      # deletion
        batches.append(_curve_inputs(image, blurred, image, order, steps))   # insertion
    probs = np.asarray(predict(np.concatenate(batches)))[:, target]
    curves = probs.reshape(len(batches), steps + 1)
    x = np.linspace(0.0, 1.0, steps + 1)
    aucs = np.array([auc(x, c) for c in curves])
    return {"deletion_auc": float(aucs[0]), "insertion_auc": float(aucs[1]),
            "deletion_random_auc": float(aucs[2::2].mean()) if n_random else float("nan"),
            "insertion_random_auc": float(aucs[3::2].mean()) if n_random else float("nan"),
            "deletion_curve": curves[0].tolist(), "insertion_curve": curves[1].tolist()}


# ----------------------------------------------------------------------------- summaries
def summarize(values, *, seed: int = 0, confidence: float = CONFIDENCE,
              resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Mean and percentile-bootstrap interval of the finite values; n counts them."""
    from scipy.stats import bootstrap
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    mean = float(v.mean())
    if len(v) < 2 or np.ptp(v) == 0:
        return {"mean": mean, "lo": mean, "hi": mean, "n": int(len(v))}
    res = bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=resamples,
                    method="percentile", random_state=np.random.default_rng(seed))
    ci = res.confidence_interval
    return {"mean": mean, "lo": float(ci.low), "hi": float(ci.high), "n": int(len(v))}


def format_ci(s: dict, digits: int = 2) -> str:
    """'0.61 [0.52, 0.70]' (or 'n/a')."""
    if not s or not s.get("n"):
        return "n/a"
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"
