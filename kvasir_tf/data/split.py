"""Stratified, seeded train/val/test split and its manifest (``split.json``).

Every later tool (evaluation, conversion comparison, saliency) reloads the manifest so
it sees exactly the same test images as training did.
"""
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kvasir_tf.data.discovery import DatasetIndex, resolve_root
from kvasir_tf.errors import DataError

log = logging.getLogger(__name__)

MANIFEST_NAME = "split.json"
MANIFEST_VERSION = 1
SUBSETS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass
class Split:
    """A fixed assignment of (relpath, label) items to train/val/test."""

    root: Path
    class_names: list
    seed: int
    train: list
    val: list
    test: list
    fractions: tuple = DEFAULT_FRACTIONS
    layout: str = "class-folders"
    notes: list = field(default_factory=list)

    def subset(self, name: str) -> list:
        if name not in SUBSETS:
            raise DataError(f"unknown subset {name!r}; use one of {', '.join(SUBSETS)}")
        return getattr(self, name)

    def paths(self, subset: str) -> list:
        return [Path(self.root) / rel for rel, _ in self.subset(subset)]

    def labels(self, subset: str) -> np.ndarray:
        return np.array([label for _, label in self.subset(subset)], dtype=np.int32)


def _counts(n: int, fractions) -> tuple:
    """Per-class (train, val, test) sizes: rounded, at least 1 in every non-zero subset."""
    n_val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
    n_test = max(1, round(n * fractions[2])) if fractions[2] > 0 else 0
    return n - n_val - n_test, n_val, n_test


def min_images_per_class(fractions=DEFAULT_FRACTIONS) -> int:
    """The smallest class that still gets one image in every non-empty subset."""
    return sum(1 for f in fractions if f > 0)


def stratified_split(index: DatasetIndex, fractions=DEFAULT_FRACTIONS, seed: int = 0,
                     *, small_classes: str = "error") -> Split:
    """Split every class on its own with a seeded shuffle (exact per-class stratification).

    A class with fewer than :func:`min_images_per_class` images cannot appear in every
    subset: ``small_classes="error"`` (default) raises, ``"train"`` puts it entirely into
    train, ``"drop"`` leaves it out (both warn). Classes with 0 images are ignored.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0,
                                                                                  abs_tol=1e-6):
        raise DataError(f"split fractions {fractions} must be three non-negative numbers summing to 1, "
                        "e.g. 0.8 0.1 0.1")
    if fractions[0] <= 0:
        raise DataError("the train fraction must be > 0")
    if small_classes not in ("error", "train", "drop"):
        raise DataError(f"small_classes must be 'error', 'train' or 'drop', not {small_classes!r}")
    need = min_images_per_class(fractions)
    by_class = [[] for _ in index.class_names]
    for rel, label in sorted(index.items):
        by_class[label].append(rel)
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SUBSETS}
    notes = []
    for label, rels in enumerate(by_class):
        name, n = index.class_names[label], len(rels)
        if n == 0:
            continue
        order = rng.permutation(n)
        rels = [rels[i] for i in order]
        if n < need:
            msg = (f"class '{name}' has {n} image(s) but a "
                   f"{'/'.join(f'{round(f * 100)}' for f in fractions)} split needs at least {need}")
            if small_classes == "error":
                raise DataError(f"{index.root / name}: {msg}; add images, remove the folder, or "
                                "allow it with small_classes='train' (--small-classes train)")
            notes.append(msg + (": all in train" if small_classes == "train" else ": dropped"))
            log.warning(notes[-1])
            if small_classes == "train":
                out["train"].extend((r, label) for r in rels)
            continue
        n_train, n_val, _ = _counts(n, fractions)
        out["train"].extend((r, label) for r in rels[:n_train])
        out["val"].extend((r, label) for r in rels[n_train:n_train + n_val])
        out["test"].extend((r, label) for r in rels[n_train + n_val:])
    for s in SUBSETS:
        out[s].sort()
    return Split(root=Path(index.root), class_names=list(index.class_names), seed=int(seed),
                 train=out["train"], val=out["val"], test=out["test"], fractions=fractions,
                 layout=index.layout, notes=notes)


def _manifest_file(run_dir_or_file) -> Path:
    p = Path(run_dir_or_file)
    return p if p.suffix == ".json" else p / MANIFEST_NAME


def save_manifest(split: Split, run_dir_or_file) -> Path:
    """Write the split as JSON (a run directory gets ``split.json``); returns the file."""
    path = _manifest_file(run_dir_or_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": MANIFEST_VERSION,
        "root": str(Path(split.root).resolve()),
        "layout": split.layout,
        "class_names": list(split.class_names),
        "seed": split.seed,
        "fractions": list(split.fractions),
        "notes": list(split.notes),
        "counts": {s: len(split.subset(s)) for s in SUBSETS},
    }
    for s in SUBSETS:
        doc[s] = [[rel, int(label)] for rel, label in split.subset(s)]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return path


def load_manifest(run_dir_or_file, data_dir=None) -> Split:
    """Reload a saved split; ``data_dir`` replaces the stored dataset root (other machine)."""
    path = _manifest_file(run_dir_or_file)
    if not path.is_file():
        raise DataError(f"no split manifest at {path}; pass a run directory containing "
                        f"{MANIFEST_NAME} (written by training) or the manifest file itself")
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != MANIFEST_VERSION:
            raise ValueError(f"version {doc.get('version')!r}")
        parts = {s: [(str(rel), int(label)) for rel, label in doc[s]] for s in SUBSETS}
        class_names = list(doc["class_names"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a valid split manifest ({exc}); regenerate it by re-running "
                        "training or `kvasir-data split`") from None
    root = resolve_root(data_dir) if data_dir is not None else Path(doc["root"])
    all_items = parts["train"] + parts["val"] + parts["test"]
    missing = [rel for rel, _ in all_items if not (root / rel).is_file()]
    if missing:
        hint = ("check that --data-dir points at the same dataset" if data_dir is not None
                else "the dataset moved? pass its new location as data_dir (--data-dir)")
        raise DataError(f"{path}: {len(missing)} of {len(all_items)} images listed are missing under "
                        f"{root} (e.g. {root / missing[0]}); {hint}")
    return Split(root=root, class_names=class_names, seed=int(doc.get("seed", 0)),
                 train=parts["train"], val=parts["val"], test=parts["test"],
                 fractions=tuple(doc.get("fractions", DEFAULT_FRACTIONS)),
                 layout=doc.get("layout", "class-folders"), notes=list(doc.get("notes", [])))
