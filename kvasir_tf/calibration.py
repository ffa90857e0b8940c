"""Post-training quantization's calibration images: drawn from the run's TRAINING split only.

The test split stays unseen, and the draw is seeded, so converting the same run twice gives
the same int8 model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kvasir_tf.errors import DataError, KvasirError

DEFAULT_NUM_CALIBRATION = 300
CALIBRATION_SEED = 0


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    import cv2
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def calibration_images(representative, image_size: int, num_calibration=None, *,
                       allow_fewer=False, notes=None) -> np.ndarray:
    """uint8 [N, S, S, 3] drawn from the training split (a Split, a data dir or an image array).

    ``num_calibration=None`` means "up to DEFAULT_NUM_CALIBRATION": fewer is fine and noted.
    An explicit count that the data cannot meet is an error unless ``allow_fewer``.
    """
    notes = notes if notes is not None else []
    asked = DEFAULT_NUM_CALIBRATION if num_calibration is None else int(num_calibration)
    if asked < 1:
        raise KvasirError(f"--num-calibration must be >= 1, got {asked}")
    rng = np.random.default_rng(CALIBRATION_SEED)
    if isinstance(representative, (str, Path)):
        from kvasir_tf.data.discovery import discover
        from kvasir_tf.data.split import load_manifest, stratified_split
        p = Path(representative)
        if p.suffix == ".json" or (p / "split.json").is_file():
            representative = load_manifest(p)
        else:
            representative = stratified_split(discover(p), seed=CALIBRATION_SEED)
    if isinstance(representative, np.ndarray):
        images = representative
        if images.ndim != 4 or images.shape[-1] != 3:
            raise KvasirError(f"representative images must be [N, H, W, 3], got {images.shape}")
        available, where = len(images), "the given image array"
    else:  # a Split
        paths = representative.paths("train")
        available, where = len(paths), f"the training split of {representative.root}"
        images = None
    if available == 0:
        raise DataError(f"no calibration images: {where} is empty; pass --data-dir with a dataset "
                        "that has training images")
    if available < asked:
        if num_calibration is not None and not allow_fewer:
            raise DataError(f"asked for {asked} calibration images but {where} has only {available}; "
                            f"pass --num-calibration {available} (or --allow-fewer)")
        notes.append(f"calibration: {available} images available in {where}, fewer than {asked}; "
                     "using all of them")
    n = min(asked, available)
    idx = np.sort(rng.permutation(available)[:n])
    if images is None:
        from kvasir_tf.data.pipeline import load_images
        return load_images([paths[i] for i in idx], image_size)
    images = images[idx]
    if images.shape[1:3] != (image_size, image_size):
        notes.append(f"representative images are {images.shape[2]}x{images.shape[1]} but the model "
                     f"takes {image_size}x{image_size}: resized")
        images = _resize_uint8(np.clip(images, 0, 255).astype(np.uint8), image_size)
    return np.asarray(images)


def representative_dataset(images: np.ndarray):
    """Calibration batches; the first image gets one black and one white pixel.

    The input tensor's range is the min/max seen in calibration. Pinning it to the full
    pixel range [0, 255] makes a PTQ model's input map exactly ``q = p - 128`` (scale 1,
    zero point -128) like the QAT model's, so devices feed ``p ^ 0x80`` whatever the data;
    two pixels of one image barely move any downstream range.
    """
    from kvasir_tf.preprocessing import PIXEL_MAX, PIXEL_MIN

    def gen():
        for i, im in enumerate(images):
            x = im[None].astype(np.float32)
            if i == 0:
                x[0, 0, 0, :] = PIXEL_MIN
                x[0, 0, -1, :] = PIXEL_MAX
            yield [x]
    return gen
