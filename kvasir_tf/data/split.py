"""Stratified, seeded train/val/test split and its manifest (``split.json``).

Every later tool (evaluation, conversion comparison, saliency) reloads the manifest so
it sees exactly the same test images as training did.

When the dataset index carries groups (a patch dataset's ``_patches.csv`` names each patch's
source image), the split is by group: all patches of one source image land in one subset, so
no test patch shares an image with a training patch.
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
    # Grouped split: {"by": what the groups are, "groups": n, "per_subset": {subset: n}};
    # None: item by item.
    grouping: dict | None = None

    @property
    def grouped(self) -> bool:
        return self.grouping is not None

    def subset(self, name: str) -> list:
        if name not in SUBSETS:
            raise DataError(f"unknown subset {name!r}; use one of {', '.join(SUBSETS)}")
        return getattr(self, name)

    def paths(self, subset: str) -> list:
        return [Path(self.root) / rel for rel, _ in self.subset(subset)]

    def labels(self, subset: str) -> np.ndarray:
        return np.array([label for _, label in self.subset(subset)], dtype=np.int32)

    def groups(self, subset: str) -> list | None:
        """One group id per image of ``subset`` (its source image for a patch dataset), or None
        when the images are independent; bootstrap intervals resample whole groups."""
        if not self.grouped:
            return None
        from kvasir_tf.data.discovery import read_groups
        items = self.subset(subset)
        found = read_groups(self.root, items)
        return None if found is None else [found[rel] for rel, _ in items]


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

    When ``index.groups`` is set, whole groups are assigned instead (see
    :func:`_grouped_split`): no group crosses subsets, class proportions are kept as
    closely as the group sizes allow, and "small" means fewer groups than subsets.
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
    if getattr(index, "groups", None) is not None:
        return _grouped_split(index, fractions, seed, small_classes)
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
            _small_class(index, name, f"class '{name}' has {n} image(s) but a "
                         f"{_fractions_label(fractions)} split needs at least {need}",
                         "add images", small_classes, notes)
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


def _fractions_label(fractions) -> str:
    return "/".join(f"{round(f * 100)}" for f in fractions)


def _small_class(index, name, msg, fix, small_classes, notes):
    """A class too small to split: stop (naming the fix), or note that it goes to train / is dropped."""
    if small_classes == "error":
        raise DataError(f"{index.root / name}: {msg}; {fix}, remove the folder, or allow it with "
                        "small_classes='train' (--small-classes train)")
    notes.append(msg + (": all in train" if small_classes == "train" else ": dropped"))
    log.warning(notes[-1])


def _grouped_split(index: DatasetIndex, fractions, seed: int, small_classes: str) -> Split:
    """Assign whole groups to subsets, greedily matching per-class target counts.

    Targets are the per-class sizes of the item-wise split (:func:`_counts`). Groups are
    visited in a seeded random order; each goes to the subset where it reduces the squared
    per-class deviation from the targets most (deviations relative to the class size, so
    small classes count as much as large ones). With single-item groups this reproduces the
    item-wise per-class sizes exactly; with patch groups of 1-4 the sizes land within a few
    items. Not largest-first (the bin-packing habit): that fills val/test with the leftover
    small groups, i.e. the source images that gave the fewest patches (small polyps), a
    systematic difference between training and test images.
    """
    members, class_groups = _group_members(index)
    notes = []
    forced, forced_labels, dropped = _small_group_classes(index, members, class_groups, fractions,
                                                          small_classes, notes)
    if dropped:
        members = {gid: [m for m in its if m[1] not in dropped] for gid, its in members.items()}
        members = {gid: its for gid, its in members.items() if its}
    gids = sorted(members)
    vec = np.zeros((len(gids), len(index.class_names)))
    for i, gid in enumerate(gids):
        for _, label in members[gid]:
            vec[i, label] += 1
    totals = vec.sum(axis=0)
    target = _group_targets(totals, forced_labels, fractions)
    assign, count = _assign_groups(gids, vec, totals, target, fractions, forced, seed)
    out = {name: [] for name in SUBSETS}
    for gid, s in assign.items():
        out[SUBSETS[s]].extend(members[gid])
    for name in SUBSETS:
        out[name].sort()
    active = [s for s, f in enumerate(fractions) if f > 0]
    for label, cname in enumerate(index.class_names):
        if totals[label] == 0 or label in forced_labels:
            continue
        empty = [SUBSETS[s] for s in active if count[s, label] == 0]
        if empty:
            notes.append(f"class '{cname}' has no image in {', '.join(empty)}: its "
                         f"{len(class_groups[label])} source groups are too few or too large")
            log.warning(notes[-1])
    per_subset = {name: sum(1 for s in assign.values() if s == k) for k, name in enumerate(SUBSETS)}
    grouping = {"by": "source", "groups": len(gids), "per_subset": per_subset}
    notes.append(f"grouped by source image: {len(gids)} groups (train {per_subset['train']}, "
                 f"val {per_subset['val']}, test {per_subset['test']}); no source is in two subsets")
    log.info(notes[-1])
    return Split(root=Path(index.root), class_names=list(index.class_names), seed=int(seed),
                 train=out["train"], val=out["val"], test=out["test"], fractions=fractions,
                 layout=index.layout, notes=notes, grouping=grouping)


def _group_members(index: DatasetIndex):
    """({group id: [(relpath, label)]}, [set of group ids per class])."""
    members = {}
    for rel, label in sorted(index.items):
        members.setdefault(index.group_of(rel), []).append((rel, label))
    class_groups = [set() for _ in index.class_names]
    for gid, its in members.items():
        for _, label in its:
            class_groups[label].add(gid)
    return members, class_groups


def _small_group_classes(index, members, class_groups, fractions, small_classes, notes):
    """Classes with fewer groups than non-empty subsets, handled per ``small_classes``.

    Returns (groups forced into train, their labels, labels dropped).
    """
    need = min_images_per_class(fractions)
    class_items = [0] * len(index.class_names)
    for its in members.values():
        for _, label in its:
            class_items[label] += 1
    forced, forced_labels, dropped = set(), set(), set()
    for label, name in enumerate(index.class_names):
        n, g = class_items[label], len(class_groups[label])
        if n == 0 or g >= need:
            continue
        _small_class(index, name, f"class '{name}' has {n} image(s) from {g} source group(s) but a "
                     f"grouped {_fractions_label(fractions)} split needs at least {need} groups",
                     "add images from other sources", small_classes, notes)
        if small_classes == "train":
            forced |= class_groups[label]
            forced_labels.add(label)
        else:
            dropped.add(label)
    return forced, forced_labels, dropped


def _group_targets(totals, forced_labels, fractions) -> np.ndarray:
    """Per-subset, per-class target item counts [3, n_classes]: the item-wise split's sizes."""
    target = np.zeros((len(SUBSETS), len(totals)))
    for label, n in enumerate(totals.astype(int)):
        if n == 0:
            continue
        target[:, label] = (n, 0, 0) if label in forced_labels else _counts(int(n), fractions)
    return target


def _assign_groups(gids, vec, totals, target, fractions, forced, seed):
    """({group id: subset index}, per-subset class counts): the seeded greedy pass."""
    scale = 1.0 / np.maximum(totals, 1.0) ** 2
    active = [s for s, f in enumerate(fractions) if f > 0]
    order = np.random.default_rng(seed).permutation(len(gids))
    count = np.zeros_like(target)

    def cost(s, v):
        # Change of sum_k ((count - target) / total)^2 when v joins subset s; ties go to
        # the least filled subset, then to the first.
        delta = float((v * (2 * (count[s] - target[s]) + v) * scale).sum())
        return round(delta, 9), count[s].sum() / max(target[s].sum(), 1.0), s

    assign = {}
    for i in order:
        v = vec[i]
        s = 0 if gids[i] in forced else min(active, key=lambda s: cost(s, v))
        count[s] += v
        assign[gids[i]] = s
    return assign, count


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
        # Absent from manifests written before grouped splits: read as None (item-wise).
        "grouping": split.grouping,
    }
    for s in SUBSETS:
        doc[s] = [[rel, int(label)] for rel, label in split.subset(s)]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return path


def as_split(split, data_dir=None) -> Split:
    """A Split as it is, or the one a manifest (split.json or its run directory) holds."""
    return split if isinstance(split, Split) else load_manifest(split, data_dir=data_dir)


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
        grouping = doc.get("grouping")
        if grouping is not None and not isinstance(grouping, dict):
            raise ValueError(f"grouping {grouping!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a valid split manifest ({exc}); regenerate it by re-running "
                        "training or `kvasir-data split`") from None
    root = resolve_root(data_dir) if data_dir is not None else Path(doc["root"])
    all_items = parts["train"] + parts["val"] + parts["test"]
    missing = [rel for rel, _ in all_items if not (root / rel).is_file()]
    if missing:
        if data_dir is not None:
            hint = "check that --data-dir points at the same dataset"
        elif len(missing) < len(all_items):
            hint = ("deleted or renamed since the split was made? restore them, or make a new split "
                    "(re-run training or `kvasir-data split`)")
        else:
            hint = "the dataset moved? pass its new location as data_dir (--data-dir)"
        raise DataError(f"{path}: {len(missing)} of {len(all_items)} images listed are missing under "
                        f"{root} (e.g. {root / missing[0]}); {hint}")
    return Split(root=root, class_names=class_names, seed=int(doc.get("seed", 0)),
                 train=parts["train"], val=parts["val"], test=parts["test"],
                 fractions=tuple(doc.get("fractions", DEFAULT_FRACTIONS)),
                 layout=doc.get("layout", "class-folders"), notes=list(doc.get("notes", [])),
                 grouping=grouping)
