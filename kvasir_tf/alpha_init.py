"""PACT clipping levels from activation statistics: where alpha starts, and how much it clips.

A PACT layer initialised at ReLU6's 6.0 clips almost nothing on a fine-tuned MobileNetV2 (the
layers' inputs have a 99th percentile of about 1.6-2.7), so its int8 step alpha/255 is two to
four times what the data needs, and Adam moves a scalar alpha by about its learning rate per
step at most. Fine-tuning from a float run therefore starts each alpha at a high percentile of its layer's
input over training images (:func:`init_alphas`), measured on the float source model, whose
ReLU6 layers sit at the PACT layers' names (the PACT model itself would quantize on its
initial alphas on the way: at 4 bits, a step of 0.4 before any statistics).

"Activation" here is the PACT layer's input x (before the clip), all elements counted; the
clipped share of a layer is the fraction of x at or above alpha.
"""
from __future__ import annotations

import numpy as np

import tensorflow as tf

from kvasir_tf.config import ALPHA_INIT_PERCENTILE
from kvasir_tf.errors import KvasirError
from kvasir_tf.pact import ALPHA_MIN, PACT

# The default percentile is config.ALPHA_INIT_PERCENTILE (TrainConfig.alpha_init_percentile).
# Measured (README, "PACT's clipping levels"): alphas started at the 99th percentile stay there while training (the clip/L2 balance), from the 99.9th they
# drift down towards it; equal accuracy, and a 1.6x finer int8 step.
NUM_IMAGES = 256                # training images the statistics are taken over
MAX_VALUES_PER_LAYER = 4_000_000  # more than this is subsampled uniformly (seeded)
ALPHA_FLOOR = 10 * ALPHA_MIN    # a dead layer (percentile ~0) still starts with a usable range
BATCH = 32


def training_images(split, image_size: int, *, mask_overlays=False, num=NUM_IMAGES, seed=0) -> np.ndarray:
    """uint8 [N, S, S, 3]: a seeded draw of up to ``num`` images of ``split``'s training subset
    (no augmentation), decoded as training decodes them."""
    from kvasir_tf.data.pipeline import load_images
    paths = split.paths("train")
    if not paths:
        raise KvasirError(f"no training images in {split.root} to take PACT alpha statistics from")
    idx = np.sort(np.random.default_rng(seed).permutation(len(paths))[:num])
    return load_images([paths[i] for i in idx], image_size, mask_overlays=mask_overlays)


def _is_clip(layer) -> bool:
    """A PACT layer, or the ReLU6 a float model has in its place (same name)."""
    return isinstance(layer, PACT) or (isinstance(layer, tf.keras.layers.ReLU) and layer.max_value is not None)


def pact_input_probe(model):
    """(probe model returning the input of every PACT layer -- or, in a float model, of every
    ReLU6 -- unwrapped from QAT wrappers, their names, the layers)."""
    entries = [(getattr(w, "layer", w).name, getattr(w, "layer", w), w.input)
               for w in model.layers if _is_clip(getattr(w, "layer", w))]
    if not entries:
        raise KvasirError("the model has no PACT or ReLU6 layers to take activation statistics from")
    names, layers, tensors = zip(*entries)
    return tf.keras.Model(model.inputs, list(tensors)), list(names), list(layers)


def _batches(images, batch=BATCH):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise KvasirError(f"activation statistics need images [N, H, W, 3], got {images.shape}")
    for i in range(0, len(images), batch):
        yield images[i:i + batch].astype(np.float32)


def activation_samples(model, images, *, max_values=MAX_VALUES_PER_LAYER, seed=0) -> dict:
    """{PACT layer name: 1-D array of its input values} over ``images`` (uint8 pixels).

    All values are kept while a layer has at most ``max_values`` of them over all images;
    beyond that each batch contributes an equal, seeded uniform sample.
    """
    probe, names, _ = pact_input_probe(model)
    n_batches = -(-len(images) // BATCH)
    per_batch = max(1, int(max_values) // n_batches)
    rng = np.random.default_rng(seed)
    kept = {n: [] for n in names}
    for x in _batches(images):
        outs = probe(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for name, out in zip(names, outs):
            v = np.asarray(out, np.float32).ravel()
            total = v.size * n_batches
            if total > max_values and v.size > per_batch:
                v = v[rng.choice(v.size, per_batch, replace=False)]
            kept[name].append(v)
    return {n: np.concatenate(v) for n, v in kept.items()}


def activation_percentiles(model, images, percentile=ALPHA_INIT_PERCENTILE, **kw) -> dict:
    """{PACT layer name: ``percentile`` of its input values} (numpy's linear interpolation)."""
    if not 0 < float(percentile) <= 100:
        raise KvasirError(f"alpha init percentile must be in (0, 100], got {percentile!r}")
    return {n: float(np.percentile(v, percentile)) for n, v in activation_samples(model, images, **kw).items()}


def init_alphas(model, images, percentile=ALPHA_INIT_PERCENTILE, *, source=None, **kw) -> dict:
    """Set every PACT alpha of ``model`` to the ``percentile`` of its layer's input (at least
    ALPHA_FLOOR); returns {name: alpha}. The inputs are those of ``source`` -- the float model
    the weights came from, whose ReLU6 layers have the PACT layers' names -- or, without it, of
    ``model`` itself (whose PACT layers quantize on their current alphas on the way)."""
    values = activation_percentiles(source if source is not None else model, images, percentile, **kw)
    pact = [(n, layer) for n, layer in zip(*pact_input_probe(model)[1:]) if isinstance(layer, PACT)]
    missing = [n for n, _ in pact if n not in values]
    if not pact or missing:
        raise KvasirError(f"alpha statistics: {'no PACT layers' if not pact else 'no layer ' + missing[0]} "
                          "in the source model; initialise from a run of the same architecture")
    out = {}
    for name, layer in pact:
        out[name] = max(values[name], ALPHA_FLOOR)
        layer.alpha.assign(out[name])
    return out


def clipped_share(model, images, **kw) -> dict:
    """{PACT layer name: fraction of its input values >= its alpha} over ``images``."""
    samples = activation_samples(model, images, **kw)
    _, names, layers = pact_input_probe(model)
    return {n: float(np.mean(samples[n] >= float(layer.alpha.numpy())))
            for n, layer in zip(names, layers) if isinstance(layer, PACT)}


def alpha_values(model) -> dict:
    """{PACT layer name: alpha} of a float or QAT-wrapped model."""
    _, names, layers = pact_input_probe(model)
    return {n: float(layer.alpha.numpy()) for n, layer in zip(names, layers) if isinstance(layer, PACT)}
