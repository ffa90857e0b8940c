"""What to explain: the models of a run or comparison folder, the images, and their lesion masks.

A run directory (``runs/NAME``) gives its Keras model (``keras``) and the .tflite files in its
``export/`` (named by mode: ``int8``, ``float``...). A comparison folder (``kvasir-compare --out``,
read through :mod:`kvasir_tf.compare.layout`) gives every run's Keras row and every converted row,
by the names of the comparison table. Images: the run's test split (masks from the dataset's
``_masks/``), or Kvasir-SEG frames with their expert masks (``--seg-dir``), restricted to the
source images of the test split when the run was trained on the Kvasir-SEG patch dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kvasir_tf import rundir
from kvasir_tf.compare import layout
from kvasir_tf.data.imageio import read_rgb
from kvasir_tf.errors import KvasirError

RUN_KERAS = "keras"                               # a run folder's own Keras model
# Defaults when --models is not given: every Keras model and every int8 .tflite (the float,
# fp16 and dynamic-range files explain like their Keras model and only add time).
DEFAULT_TFLITE = ("int8",)


@dataclass
class ModelRef:
    name: str
    path: Path
    kind: str            # "keras" or "tflite"


@dataclass
class ImageSet:
    """Images (uint8 [N,S,S,3]) with labels (-1: unknown), masks (bool [N,S,S] or None) and names."""

    images: np.ndarray
    labels: np.ndarray
    masks: list
    names: list
    class_names: list
    source: str
    notes: list = field(default_factory=list)

    @property
    def has_masks(self) -> bool:
        return any(m is not None and m.any() for m in self.masks)


def find_models(folder) -> dict:
    """{name: ModelRef} of a run or comparison folder, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KvasirError(f"{folder} is not a folder; pass a run directory (runs/NAME) or a "
                          "comparison folder (kvasir-compare --out)")
    found = {}
    if rundir.is_run_dir(folder):
        if rundir.checkpoint_path(folder).is_file():
            found[RUN_KERAS] = ModelRef(RUN_KERAS, rundir.checkpoint_path(folder), "keras")
        for p in sorted((folder / rundir.EXPORT_DIR).glob("*.tflite")):
            name = p.stem.removeprefix("model_")
            found[name] = ModelRef(name, p, "tflite")
    elif layout.is_comparison(folder):
        for run in layout.runs(folder):
            if rundir.checkpoint_path(run).is_file():
                name = layout.keras_row(run.name)      # the comparison row's name
                found[name] = ModelRef(name, rundir.checkpoint_path(run), "keras")
        for name, p in layout.tflite_models(folder).items():
            found[name] = ModelRef(name, p, "tflite")
    if not found:
        raise KvasirError(f"{folder} holds no model: expected {rundir.CKPT_DIR}/{rundir.BEST} (a run) or "
                          f"{layout.describe()}")
    return found


def select_models(found: dict, names=None) -> dict:
    if names:
        unknown = [n for n in names if n not in found]
        if unknown:
            raise KvasirError(f"--models: no model {', '.join(unknown)} here; choose from {', '.join(found)}")
        return {n: found[n] for n in names}
    return {n: r for n, r in found.items()
            if r.kind == "keras" or any(t in n for t in DEFAULT_TFLITE)}


def split_run(folder) -> Path:
    """The run whose split every model is judged on (a comparison's first run)."""
    folder = Path(folder)
    if rundir.is_run_dir(folder):
        return folder
    runs = [r for r in layout.runs(folder) if rundir.is_run_dir(r)]
    for preferred in ("float", "sgt"):
        runs.sort(key=lambda r: r.name != preferred)
    if not runs:
        raise KvasirError(f"{folder} has no run with a {rundir.SPLIT}; the comparison must have trained "
                          "at least one run (kvasir-compare)")
    return runs[0]


def load_mask(path, shape_hw, image_path, size: int) -> np.ndarray:
    """A mask file for an image of ``shape_hw`` (H, W), cropped and resized like the image, as bool [S,S]."""
    from kvasir_tf.data.imageio import resize
    from kvasir_tf.data.kvasir_seg import read_mask
    mask = read_mask(path)
    if mask.shape != tuple(shape_hw):
        raise KvasirError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                          f"{shape_hw[1]}x{shape_hw[0]}; give each mask its image's size")
    return resize(mask.astype(np.uint8) * 255, size) >= 128


def _per_class(labels, limit):
    """Indices of at most ``limit`` items per label, in order."""
    if not limit:
        return list(range(len(labels)))
    seen, keep = {}, []
    for i, y in enumerate(labels):
        if seen.get(y, 0) < limit:
            seen[y] = seen.get(y, 0) + 1
            keep.append(i)
    return keep


def _load(paths, mask_paths, size, mask_overlays):
    from kvasir_tf.data.imageio import resize
    from kvasir_tf.data.overlays import mask_overlays as blank_overlays
    images, masks = [], []
    for p, mp in zip(paths, mask_paths):
        rgb = read_rgb(p)
        masks.append(None if mp is None else load_mask(mp, rgb.shape[:2], p, size))
        images.append(resize(blank_overlays(rgb) if mask_overlays else rgb, size))
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8), masks


def test_images(run_dir, size: int, limit=None) -> ImageSet:
    """The run's test split (``limit`` images per class) with the dataset's masks where they exist."""
    from kvasir_tf.data.discovery import mask_path
    from kvasir_tf.data.split import load_manifest
    split = load_manifest(run_dir)
    if not split.test:
        raise KvasirError(f"{Path(run_dir) / rundir.SPLIT} has no test images; retrain with a test "
                          "fraction above 0 (the saliency study only looks at held-out images)")
    keep = _per_class([y for _, y in split.test], limit)
    items = [split.test[i] for i in keep]
    paths = [Path(split.root) / rel for rel, _ in items]
    cfg = rundir.read_config(run_dir)
    images, masks = _load(paths, [mask_path(split.root, rel) for rel, _ in items], size,
                          bool(cfg.get("mask_overlays")))
    return ImageSet(images, np.array([y for _, y in items]), masks, [rel for rel, _ in items],
                    list(split.class_names), f"test split of {split.root}")


def seg_images(seg_dir, run_dir, size: int, limit=None) -> ImageSet:
    """Kvasir-SEG frames with expert masks, only the test sources when the run used its patches."""
    from kvasir_tf.data.discovery import read_groups
    from kvasir_tf.data.kvasir_seg import load_kvasir_seg
    from kvasir_tf.data.split import load_manifest
    samples = load_kvasir_seg(seg_dir)
    split = load_manifest(run_dir)
    groups = read_groups(split.root, split.test) or {}
    sources = {g for rel, g in groups.items() if g != rel}
    if sources:
        samples = [s for s in samples if Path(s.image).stem in sources]
        note = f"of {len(samples)} frames whose patches are in the test split (none seen in training)"
    else:
        note = f"of all {len(samples)} frames (the run was not trained on Kvasir-SEG patches)"
    if limit:
        samples = samples[:limit]
    notes = [f"The first {len(samples)} {note}."]
    names = list(split.class_names)
    label = names.index("polyp") if "polyp" in names else -1
    images, masks = _load([s.image for s in samples], [s.mask for s in samples], size, False)
    return ImageSet(images, np.full(len(samples), label), masks, [Path(s.image).name for s in samples],
                    names, f"Kvasir-SEG frames in {seg_dir}", notes)
