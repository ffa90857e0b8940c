"""A tiny trained classifier, its dataset and a run directory, built once per test session.

A few conv layers instead of MobileNetV2 keep each conversion at seconds on 2 CPU cores; the
model still starts with kvasir_tf's Preprocess layer and ends in softmax like the real one.
It is trained to confident predictions so top-1 comparisons between artifacts are not ties.
"""
import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

import kvasir_tf  # noqa: F401

SIZE = 32
CLASSES = ("blue", "green", "red")
PER_CLASS = 20
# Half for training (the int8 calibration set), 40 % test: agreement is measured on images the
# converter never saw, and enough of them (24) for one disagreement to show.
FRACTIONS = (0.5, 0.1, 0.4)
# How far an int8 file's probabilities may sit from its Keras model's, in output steps (the
# softmax output's scale, 1/256): its own rounding (half a step) plus what the hidden layers'
# rounding moves an unsaturated output.
INT8_OUTPUT_STEPS = 3


def _tmp() -> Path:
    d = Path(tempfile.mkdtemp(prefix="kvasir_convert_"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


@functools.lru_cache(maxsize=None)
def dataset_dir() -> Path:
    """3 colour classes (BGR files -> RGB), noisy so the model has to learn a little."""
    import cv2
    root = _tmp() / "colours"
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            img = rng.integers(0, 90, (40, 48, 3)).astype(np.uint8)
            img[..., c] = rng.integers(150, 256, (40, 48))        # BGR channel c dominant
            cv2.imwrite(str(root / name / f"{i:02d}.png"), img)
    return root


def tiny_model(num_classes=len(CLASSES), size=SIZE, seed=0):
    import tensorflow as tf
    from kvasir_tf.model import Preprocess
    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    i = tf.keras.Input((size, size, 3), name="pixels")
    x = Preprocess(name="preprocess")(i)
    x = L.Conv2D(16, 3, strides=2, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(96, 1, use_bias=False)(x)   # >= 1024 weights, so dynamic-range quantizes it
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(num_classes, activation="softmax", name="predictions")(x)
    return tf.keras.Model(i, x)


@functools.lru_cache(maxsize=None)
def split():
    from kvasir_tf.data.discovery import discover
    from kvasir_tf.data.split import stratified_split
    return stratified_split(discover(dataset_dir()), FRACTIONS, seed=0)


@functools.lru_cache(maxsize=None)
def trained_model():
    import tensorflow as tf
    from kvasir_tf.data.pipeline import load_images
    sp = split()
    x = load_images(sp.paths("train"), SIZE).astype(np.float32)
    y = sp.labels("train")
    m = tiny_model()
    m.compile(tf.keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=40, batch_size=32, verbose=0)
    return m


@functools.lru_cache(maxsize=None)
def run_dir() -> Path:
    """A run directory as training writes it: config.json, split.json, checkpoints/best.keras."""
    from kvasir_tf.model_io import save_model
    from kvasir_tf.data.split import save_manifest
    run = _tmp() / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_manifest(split(), run)
    save_model(trained_model(), run / "checkpoints" / "best.keras")
    (run / "config.json").write_text(json.dumps({
        "mode": "float", "image_size": SIZE, "alpha": 0.35, "class_names": list(CLASSES),
        "data_dir": str(dataset_dir()), "seed": 0}))
    return run


@functools.lru_cache(maxsize=None)
def converted(mode) -> Path:
    """The run converted once per mode (tests read these; none may modify them)."""
    from kvasir_tf.convert import convert
    out = _tmp() / mode / f"model_{mode}.tflite"
    convert(run_dir(), out, mode, c_array=(mode == "int8"), verbose=False)
    return out
