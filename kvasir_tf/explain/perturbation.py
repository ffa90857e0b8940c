"""Gradient-free maps (occlusion, RISE) through any model, in particular the deployed int8 .tflite.

The int8 model has no gradients, so its map comes from what its *outputs* do when parts of the
image are hidden. :class:`TFLitePredictor` runs the real LiteRT interpreter fed through the
model's sidecar pixel map (``kvasir_tf.runtime.TFLiteModel``), with the input resized once to a
batch (:func:`batch_for`): at 96 px a map of 500 masks is 10 invokes of 50, not 500 invokes.
:class:`KerasPredictor` does the same for a Keras model, so float and int8 can be compared with
one method and the same masks.

Hidden pixels take the neutral grey (``NEUTRAL_PIXEL``, the model's input 0), as SGT's masking does.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from kvasir_tf.errors import KvasirError
from kvasir_tf.explain.normalize import normalize
from kvasir_tf.preprocessing import NEUTRAL_PIXEL

DEFAULT_BATCH = None            # images per call: None = batch_for(the model's image size)
MAX_BATCH = 50
BATCH_PIXELS = MAX_BATCH * 96 * 96   # images x pixels per call: 50 at 96 px, 9 at 224 px
OCCLUSION_WINDOW = 1 / 6        # window side as a share of the image side
RISE_MASKS = 500
RISE_GRID = 7                   # RISE's coarse grid cells per side
RISE_KEEP = 0.5                 # probability that a grid cell is kept


def batch_for(image_size: int, batch_size=None) -> int:
    """Images per call: ``batch_size`` when given, else as many as fit ``BATCH_PIXELS``.

    tools/benchmark_explain.py, int8, 2 idle cores: at 96 px a batch of 50 makes a map 1.0-1.2x as
    fast as one invoke per mask (1.7x with the cores loaded); at 224 px it makes it 0.7x as fast
    (the batch's activations leave the cache), and a batch of 9 is 0.9-1.1x.
    """
    if batch_size:
        return int(batch_size)
    return max(1, min(MAX_BATCH, BATCH_PIXELS // (int(image_size) ** 2)))


class KerasPredictor:
    """pixels float32 [n,S,S,3] -> probabilities, in fixed-size batches through one traced call."""

    def __init__(self, model, batch_size=DEFAULT_BATCH):
        import tensorflow as tf
        from kvasir_tf.model_io import image_size_of
        self.model = model
        self.image_size = image_size_of(model)
        self.batch_size = batch_for(self.image_size, batch_size)
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, pixels) -> np.ndarray:
        x = np.asarray(pixels, np.float32)
        outs = []
        for i in range(0, len(x), self.batch_size):
            chunk = x[i:i + self.batch_size]
            n = len(chunk)
            if n < self.batch_size:  # one traced shape
                chunk = np.concatenate([chunk, np.zeros((self.batch_size - n, *chunk.shape[1:]), np.float32)])
            outs.append(np.asarray(self._call(chunk))[:n])
        return np.concatenate(outs).astype(np.float32)


class TFLitePredictor:
    """The same for a .tflite through ``TFLiteModel``: input resized once to the batch size.

    ``batch_size=1`` is one invoke per image (the baseline of tools/benchmark_explain.py).
    """

    def __init__(self, model, batch_size=DEFAULT_BATCH, num_threads=None):
        from kvasir_tf.runtime import TFLiteModel
        self.model = model if isinstance(model, TFLiteModel) else TFLiteModel(model, num_threads=num_threads)
        self.image_size = self.model.image_size
        want = batch_for(self.image_size, batch_size)
        self.batch_size = want if self.model.resize_batch(want) else 1

    def __call__(self, pixels) -> np.ndarray:
        x = np.asarray(pixels, np.float32)
        b = self.batch_size
        self.model.resize_batch(b)
        outs = []
        for i in range(0, len(x), b):
            chunk = x[i:i + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.full((b - n, *chunk.shape[1:]), NEUTRAL_PIXEL, np.float32)])
            outs.append(self.model.invoke(chunk)[:n])
        return np.concatenate(outs).astype(np.float32)


def predictor_for(model, batch_size=DEFAULT_BATCH):
    """A predictor for a Keras model, a TFLiteModel or a .tflite path (or an existing predictor)."""
    import tensorflow as tf
    from kvasir_tf.runtime import TFLiteModel
    if isinstance(model, (KerasPredictor, TFLitePredictor)):
        return model
    if isinstance(model, tf.keras.Model):
        return KerasPredictor(model, batch_size)
    if isinstance(model, TFLiteModel) or str(model).endswith(".tflite"):
        return TFLitePredictor(model, batch_size)
    if callable(model) and hasattr(model, "image_size"):
        return model
    raise KvasirError(f"cannot explain {model!r}: pass a Keras model or a .tflite file")


class PerturbationExplainer:
    """A callable ``(images [N,S,S,3], targets=None) -> maps [N,S,S]`` through a predictor."""

    name = "abstract"

    def __init__(self, model, batch_size=DEFAULT_BATCH):
        self.predict = predictor_for(model, batch_size)

    def __call__(self, images, targets=None) -> np.ndarray:
        x = np.asarray(images, np.float32)
        size = self.predict.image_size
        if x.ndim != 4 or x.shape[1:] != (size, size, 3):
            raise KvasirError(f"images must be raw pixels [N, {size}, {size}, 3] for this model, got {x.shape}")
        base = self.predict(x)
        targets = base.argmax(1) if targets is None else np.asarray(targets, np.int64)
        maps = [self._explain(img, int(t), float(p[t])) for img, t, p in zip(x, targets, base)]
        return normalize(np.stack(maps), size, size) if maps else np.zeros(x.shape[:3], np.float32)


def occlusion_windows(size: int, window: int, stride: int) -> list:
    """Top-left corners along one axis, the last window flush with the edge."""
    last = size - window
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


class Occlusion(PerturbationExplainer):
    """Zeiler & Fergus: the drop of the class probability when a grey window hides each place;
    a pixel's value is the mean drop over the windows that cover it."""

    name = "occlusion"

    def __init__(self, model, batch_size=DEFAULT_BATCH, window=None, stride=None):
        super().__init__(model, batch_size)
        s = self.predict.image_size
        self.window = int(window or max(2, round(s * OCCLUSION_WINDOW)))
        self.stride = int(stride or max(1, self.window // 2))
        if not 0 < self.window <= s:
            raise KvasirError(f"occlusion window {self.window} must be within 1..{s} pixels")
        starts = occlusion_windows(s, self.window, self.stride)
        self.corners = [(y, x) for y in starts for x in starts]

    def _explain(self, img, target, p0):
        w = self.window
        batch = np.repeat(img[None], len(self.corners), axis=0)
        for i, (y, x) in enumerate(self.corners):
            batch[i, y:y + w, x:x + w] = NEUTRAL_PIXEL
        drops = p0 - self.predict(batch)[:, target]
        total = np.zeros(img.shape[:2], np.float64)
        count = np.zeros(img.shape[:2], np.float64)
        for d, (y, x) in zip(drops, self.corners):
            total[y:y + w, x:x + w] += d
            count[y:y + w, x:x + w] += 1
        return total / np.maximum(count, 1)


def rise_masks(n: int, size: int, grid: int = RISE_GRID, keep: float = RISE_KEEP, seed: int = 0) -> np.ndarray:
    """Petsiuk et al.'s masks: random grid x grid binary cells, bilinearly upsampled and shifted
    by a random sub-cell offset; float32 [n, size, size] in [0, 1]."""
    rng = np.random.default_rng(seed)
    cell = math.ceil(size / grid)
    up = (grid + 1) * cell
    cells = (rng.random((n, grid + 1, grid + 1)) < keep).astype(np.float32)
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        big = cv2.resize(cells[i], (up, up), interpolation=cv2.INTER_LINEAR)
        dy, dx = rng.integers(0, cell, size=2)
        out[i] = big[dy:dy + size, dx:dx + size]
    return out


class RISE(PerturbationExplainer):
    """RISE: the mask-weighted mean of the class probability over random soft masks, with the mean
    response subtracted (so the map has no constant offset): M(x) = E[(p - E p) m(x)] / keep.
    The masks are seeded, so two models are probed with exactly the same masks."""

    name = "rise"

    def __init__(self, model, batch_size=DEFAULT_BATCH, n_masks=RISE_MASKS, grid=RISE_GRID,
                 keep=RISE_KEEP, seed=0):
        super().__init__(model, batch_size)
        if n_masks < 2:
            raise KvasirError(f"RISE needs at least 2 masks, got {n_masks}")
        self.keep = float(keep)
        self.masks = rise_masks(int(n_masks), self.predict.image_size, grid, keep, seed)

    def _explain(self, img, target, p0):
        chunk = max(1, self.predict.batch_size) * 4   # bounded memory at 224 px
        probs = []
        for i in range(0, len(self.masks), chunk):
            m = self.masks[i:i + chunk, ..., None]
            probs.append(self.predict(img[None] * m + NEUTRAL_PIXEL * (1.0 - m))[:, target])
        probs = np.concatenate(probs)
        weights = probs - probs.mean()
        return np.tensordot(weights, self.masks, axes=1) / (len(probs) * self.keep)


EXPLAINERS = {c.name: c for c in (Occlusion, RISE)}
