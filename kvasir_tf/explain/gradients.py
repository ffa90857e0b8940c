"""Gradient explainers for Keras models (float, SGT, and QAT through its fake-quant graph).

Vanilla saliency, SmoothGrad and Grad-CAM++ come from tf-keras-vis 0.8.7 (the release that runs
on tf_keras; 0.8.8 imports Keras 3). Integrated Gradients is written here: neither tf-keras-vis
nor any other kept library has it for tf_keras.

Score: the target class's *centred logit* ``z_c - mean_j z_j``, recovered from the softmax
outputs as ``log p_c - mean_j log p_j`` (softmax fixes logits only up to a shared constant).
Unlike the probability it does not saturate: a model 99.99 % sure of a polyp still has a
gradient. Vanilla saliency is then Captum's ``Saliency`` (|d score / d pixel|), reduced over
RGB by the maximum as in Simonyan et al. All maps are normalised
(:func:`kvasir_tf.explain.normalize.normalize`) at the input's height x width.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import tensorflow as tf

from kvasir_tf.errors import KvasirError
from kvasir_tf.explain.normalize import normalize
from kvasir_tf.preprocessing import NEUTRAL_PIXEL

LOG_FLOOR = 1e-30           # probabilities are floored here before the log
SMOOTH_SAMPLES = 16         # SmoothGrad: noisy copies per image
SMOOTH_NOISE = 0.15         # SmoothGrad: noise sigma as a share of the image's pixel range
IG_STEPS = 32               # Integrated Gradients: points on the straight path from the baseline
DEFAULT_BATCH = 16


def centred_logit_score(targets):
    """tf-keras-vis score: per-sample centred logit of class ``targets[i]``."""
    targets = tf.constant(np.asarray(targets, np.int32))

    def score(output):
        logp = tf.math.log(tf.maximum(output, LOG_FLOOR))
        chosen = tf.gather(logp, targets, axis=1, batch_dims=1)
        return chosen - tf.reduce_mean(logp, axis=1)
    return score


def predict_classes(model, images, batch_size=DEFAULT_BATCH) -> np.ndarray:
    """Probabilities [N, C] of a Keras model on raw pixels."""
    return np.asarray(model.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0))


class KerasExplainer:
    """A callable ``(images [N,S,S,3], targets=None) -> maps [N,S,S]``; targets default to the prediction.

    One per model: a tf-keras-vis visualizer is built once (``_vis``), and each batch passes its
    own score (the targets) at call time, as tf-keras-vis intends.
    """

    name = "abstract"

    def __init__(self, model, batch_size: int = DEFAULT_BATCH, seed: int = 0):
        if not isinstance(model, tf.keras.Model):
            raise KvasirError(f"{self.name} explains Keras models; got {type(model).__name__} "
                              "(use occlusion or RISE for a .tflite)")
        self.model, self.batch_size, self.seed = model, int(batch_size), int(seed)

    def __call__(self, images, targets=None) -> np.ndarray:
        x = np.asarray(images, np.float32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise KvasirError(f"images must be raw pixels [N, H, W, 3], got {x.shape}")
        if targets is None:
            targets = predict_classes(self.model, x, self.batch_size).argmax(1)
        targets = np.asarray(targets, np.int32)
        out = []
        for i in range(0, len(x), self.batch_size):
            raw = np.asarray(self._explain(x[i:i + self.batch_size], targets[i:i + self.batch_size]))
            out.append(normalize(raw.reshape(-1, *raw.shape[-2:]), x.shape[1], x.shape[2]))
        return np.concatenate(out) if out else np.zeros(x.shape[:3], np.float32)

    def _explain(self, x, targets):
        raise NotImplementedError


class VanillaSaliency(KerasExplainer):
    """|d score / d pixel|, max over RGB (the paper's map; Captum's Saliency)."""

    name = "saliency"

    @cached_property
    def _vis(self):
        from tf_keras_vis.saliency import Saliency
        return Saliency(self.model, clone=False)

    def _explain(self, x, targets):
        return self._vis(centred_logit_score(targets), x, normalize_map=False)


class SmoothGrad(VanillaSaliency):
    """Vanilla saliency averaged over noisy copies (tf-keras-vis ``smooth_samples``)."""

    name = "smoothgrad"

    def __init__(self, model, batch_size=DEFAULT_BATCH, seed=0, samples=SMOOTH_SAMPLES, noise=SMOOTH_NOISE):
        super().__init__(model, batch_size, seed)
        self.samples, self.noise = int(samples), float(noise)

    def _explain(self, x, targets):
        state = np.random.get_state()   # tf-keras-vis draws its noise from NumPy's global generator
        np.random.seed(self.seed)
        try:
            return self._vis(centred_logit_score(targets), x, normalize_map=False,
                             smooth_samples=self.samples, smooth_noise=self.noise)
        finally:
            np.random.set_state(state)


def last_feature_layer(model):
    """The last layer with a 4-D output: the feature map that feeds the global pooling
    (MobileNetV2's ``out_relu``, QAT-wrapped or not)."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output_shape", None)
        if isinstance(layer, tf.keras.layers.InputLayer):
            break
        if isinstance(shape, tuple) and len(shape) == 4:
            return layer
    raise KvasirError(f"model {model.name} has no convolutional feature map for Grad-CAM++; "
                      "use saliency, smoothgrad, occlusion or rise")


class GradCAMPlusPlus(KerasExplainer):
    """Grad-CAM++ on the last feature map (tf-keras-vis), bilinearly zoomed to the input size."""

    name = "gradcam++"

    @cached_property
    def _vis(self):
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        return GradcamPlusPlus(self.model, clone=False)

    @cached_property
    def _layer(self):
        return last_feature_layer(self.model)

    def _explain(self, x, targets):
        # tf-keras-vis extracts the penultimate layer's output per call (its own design)
        return self._vis(centred_logit_score(targets), x, penultimate_layer=self._layer,
                         seek_penultimate_conv_layer=False, normalize_cam=False)


class IntegratedGradients(KerasExplainer):
    """Sundararajan et al.: (x - x0) * mean gradient on the path from a neutral grey image x0;
    |sum over RGB| per pixel. Trapezoid rule with ``steps`` intervals."""

    name = "integrated-gradients"

    def __init__(self, model, batch_size=DEFAULT_BATCH, seed=0, steps=IG_STEPS, baseline=NEUTRAL_PIXEL):
        super().__init__(model, batch_size, seed)
        self.steps, self.baseline = int(steps), float(baseline)

    def _explain(self, x, targets):
        alphas = tf.linspace(0.0, 1.0, self.steps + 1)
        weights = np.full(self.steps + 1, 1.0 / self.steps, np.float32)
        weights[[0, -1]] /= 2.0
        maps = []
        for img, t in zip(x, targets):
            base = tf.fill(img.shape, self.baseline)
            path = base[None] + alphas[:, None, None, None] * (img - base)[None]
            score = centred_logit_score(np.full(self.steps + 1, t))
            with tf.GradientTape() as tape:
                tape.watch(path)
                s = score(self.model(path, training=False))
            grads = tape.gradient(s, path).numpy()
            avg = np.tensordot(weights, grads, axes=1)
            maps.append(np.abs(((img - self.baseline) * avg).sum(-1)))
        return np.stack(maps)


EXPLAINERS = {c.name: c for c in (VanillaSaliency, SmoothGrad, GradCAMPlusPlus, IntegratedGradients)}
