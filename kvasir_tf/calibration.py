"""Post-training quantization's calibration images: drawn from the run's TRAINING split only.

The test split stays unseen, and the draw is seeded, so converting the same run twice gives
the same int8 model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kvasir_tf.errors import DataError, KvasirError

DEFAULT_NUM_CALIBRATION = 300
CALIBRATION_SEED = 0


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    import cv2
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


@dataclass
class Calibration:
    """The calibration images and where they came from (recorded in the model's sidecar)."""

    images: np.ndarray
    provenance: dict = field(default_factory=dict)
    notes: tuple = ()               # what the user should know (fewer images, resized)


def _as_split(representative):
    """A Split from a Split or a manifest (split.json, or a run directory holding one)."""
    from kvasir_tf.data.split import MANIFEST_NAME, load_manifest
    if not isinstance(representative, (str, Path)):
        return representative
    p = Path(representative)
    if p.suffix == ".json" or (p / MANIFEST_NAME).is_file():
        return load_manifest(p)
    raise KvasirError(f"{p} is a dataset folder without a split manifest: calibration must draw from "
                      "the training split the model was trained on, or test images could leak in; "
                      f"pass the run directory, or --manifest RUN/{MANIFEST_NAME}")


def _draw(available: int, num_calibration, allow_fewer: bool, where: str) -> tuple:
    """(sorted indices of the seeded draw, notes); fewer than asked is an error only for an
    explicit count."""
    notes = []
    asked = DEFAULT_NUM_CALIBRATION if num_calibration is None else int(num_calibration)
    if asked < 1:
        raise KvasirError(f"--num-calibration must be >= 1, got {asked}")
    if available == 0:
        raise DataError(f"no calibration images: {where} is empty; pass a run whose training split "
                        "has images")
    if available < asked:
        if num_calibration is not None and not allow_fewer:
            raise DataError(f"asked for {asked} calibration images but {where} has only {available}; "
                            f"pass --num-calibration {available} (or --allow-fewer)")
        notes.append(f"calibration: {available} images available in {where}, fewer than {asked}; "
                     "using all of them")
    rng = np.random.default_rng(CALIBRATION_SEED)
    return np.sort(rng.permutation(available)[:min(asked, available)]), notes


def calibration_images(representative, image_size: int, num_calibration=None, *,
                       allow_fewer=False, mask_overlays=False) -> Calibration:
    """uint8 [N, S, S, 3] from a training split (a Split or a manifest) or a given image array.

    ``num_calibration=None`` means "up to DEFAULT_NUM_CALIBRATION": fewer is fine and noted.
    An explicit count that the data cannot meet is an error unless ``allow_fewer``.
    ``mask_overlays`` must be the run's own setting (images preprocessed as in training).
    """
    if isinstance(representative, np.ndarray):
        images = representative
        if images.ndim != 4 or images.shape[-1] != 3:
            raise KvasirError(f"representative images must be [N, H, W, 3], got {images.shape}")
        idx, notes = _draw(len(images), num_calibration, allow_fewer, "the given image array")
        images = images[idx]
        if images.shape[1:3] != (image_size, image_size):
            notes.append(f"representative images are {images.shape[2]}x{images.shape[1]} but the model "
                         f"takes {image_size}x{image_size}: resized")
            images = _resize_uint8(np.clip(images, 0, 255).astype(np.uint8), image_size)
        return Calibration(np.asarray(images), {"source": "image array", "num_images": int(len(images))},
                           tuple(notes))
    from kvasir_tf.data.pipeline import load_images
    split = _as_split(representative)
    train = split.subset("train")
    idx, notes = _draw(len(train), num_calibration, allow_fewer, f"the training split of {split.root}")
    rel = [train[i][0] for i in idx]
    images = load_images([Path(split.root) / r for r in rel], image_size, mask_overlays)
    return Calibration(images, {"source": "split manifest", "subset": "train", "root": str(split.root),
                                "split_seed": int(split.seed), "draw_seed": CALIBRATION_SEED,
                                "mask_overlays": bool(mask_overlays), "num_images": len(rel),
                                "images": rel}, tuple(notes))


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
