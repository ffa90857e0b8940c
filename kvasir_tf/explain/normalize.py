"""The one normalisation every saliency map gets before it is drawn or measured.

A map is brought to the image's height x width (bilinear), negative values are set to 0 (evidence
against the class is not where the model looks for it) and the result is divided by its maximum,
so every map lies in [0, 1] with its strongest pixel at 1. An all-zero (or all-negative) map stays
all zero: it says "no evidence anywhere", which the metrics then treat as such instead of
inventing a ranking. Nothing is clipped at a percentile: the rank order, which the agreement and
faithfulness metrics use, is exactly the explainer's.
"""
from __future__ import annotations

import cv2
import numpy as np

from kvasir_tf.errors import KvasirError


def to_size(saliency: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D map resized (bilinear) to height x width; unchanged when it already has that size."""
    m = np.asarray(saliency, np.float32)
    if m.ndim != 2:
        raise KvasirError(f"a saliency map must be 2-D (height, width), got shape {m.shape}")
    if m.shape == (height, width):
        return m
    return cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)


def normalize(saliency: np.ndarray, height: int | None = None, width: int | None = None) -> np.ndarray:
    """One map [H, W] (or a batch [N, H, W]) -> float32 in [0, 1], at height x width when given."""
    m = np.asarray(saliency, np.float32)
    if m.ndim == 3:
        return np.stack([normalize(x, height, width) for x in m]) if len(m) else m
    if height is not None:
        m = to_size(m, height, width if width is not None else height)
    m = np.where(np.isfinite(m), m, 0.0)
    m = np.maximum(m, 0.0)
    top = float(m.max()) if m.size else 0.0
    return (m / top).astype(np.float32) if top > 0 else np.zeros_like(m, np.float32)
