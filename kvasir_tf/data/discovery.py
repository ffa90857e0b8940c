"""Find the images and classes of a class-per-folder dataset (Kvasir v2 or any other).

Validation is header-only (a few KB per file: signature, dimensions, end marker), so a
scan of the full 8000-image Kvasir v2 takes seconds; the full decode happens once,
in the pipeline's cache build, which drops (and counts) any file that still fails.
Images with a side under :data:`~kvasir_tf.data.imageio.MIN_IMAGE_SIDE` are skipped too:
upscaled to the model input they would be trained on as blur.
"""
import csv
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kvasir_tf.data.classes import KVASIR_V2_CLASSES, KVASIR_V2_DIRNAME
from kvasir_tf.data.imageio import (IMAGE_EXTENSIONS, MIN_IMAGE_SIDE, TOO_SMALL, check_file,
                                    check_min_side)
from kvasir_tf.errors import DataError

log = logging.getLogger(__name__)

# Per-image masks live beside the classes at root/_masks/<class>/<stem>.png.
MASKS_DIRNAME = "_masks"
# Patch datasets (kvasir_tf.data.kvasir_seg) list each patch's source image here; patches of one
# source are not independent, so the split keeps them together. Columns: class, file, source, ...
GROUPS_FILENAME = "_patches.csv"

_GET_DATA = ("run `make demo` (or `kvasir-synth --out DIR`) for demo data, "
             "or `kvasir-data download DEST` for the real Kvasir v2")


@dataclass
class DatasetIndex:
    """What discovery found: class names in model-output order, and (relpath, label) items."""

    root: Path
    class_names: list
    items: list                  # [(posix path relative to root, label index)]
    skipped: list                # [(posix path relative to root, reason)]
    layout: str                  # "kvasir-v2" | "class-folders"
    warnings: list = field(default_factory=list)
    # Optional {relpath: group id}: items sharing a group (e.g. patches of one source image)
    # must stay in one subset. None: every item is independent.
    groups: dict | None = None

    def group_of(self, relpath: str) -> str:
        """The item's group id (its own relpath when it has none)."""
        if self.groups is None:
            return relpath
        return self.groups.get(relpath, relpath)

    def counts(self) -> list:
        """Number of items per class, in class order."""
        c = [0] * len(self.class_names)
        for _, label in self.items:
            c[label] += 1
        return c


def _is_hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def resolve_root(data_dir) -> Path:
    """The folder holding the class folders: ``data_dir`` or its ``kvasir-dataset-v2/``."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.exists():
        raise DataError(f"data directory {data_dir} does not exist; pass the folder holding the "
                        f"class folders, or {_GET_DATA}")
    if not data_dir.is_dir():
        raise DataError(f"{data_dir} is not a directory; pass the folder holding the class folders")
    inner = data_dir / KVASIR_V2_DIRNAME
    if inner.is_dir():
        return inner
    return data_dir


def mask_path(root, relpath):
    """The mask stored for an item at ``root/_masks/<class>/<stem>.png``, or None."""
    p = Path(root) / MASKS_DIRNAME / Path(relpath).with_suffix(".png")
    return p if p.is_file() else None


def read_groups(root, items) -> dict | None:
    """``{relpath: group}`` for ``items`` from ``root/_patches.csv`` (None when there is none).

    A listed item's group is its ``source`` image; items not listed form their own group
    (:func:`discover` warns with their count). Listed files that are not items are ignored.
    """
    root = Path(root)
    path = root / GROUPS_FILENAME
    if not path.is_file():
        return None
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"class", "file", "source"}
            if not need <= set(reader.fieldnames or ()):
                raise ValueError(f"needs the columns {', '.join(sorted(need))}, has "
                                 f"{', '.join(reader.fieldnames or ()) or 'none'}")
            listed = {f"{row['class']}/{row['file']}": row["source"] for row in reader}
    except (OSError, ValueError, csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable patch index ({exc}); regenerate the patches "
                        "(kvasir-data patches) or delete the file to split image by image") from None
    groups, unlisted = {}, 0
    for rel, _label in items:
        src = listed.get(rel)
        if src is None or src == "":
            unlisted += 1
            groups[rel] = rel        # relpaths contain "/", source names do not: no clash
        else:
            groups[rel] = src
    n_sources = len({g for rel, g in groups.items() if g != rel})
    log.info("%s: %d of %d item(s) grouped by source image (%d sources)", path,
             len(items) - unlisted, len(items), n_sources)
    return groups


def _list_files(class_dir: Path):
    """All non-hidden files below a class folder, sorted, as paths."""
    out = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(out)


def _check(path: Path):
    """None for a usable image, else why not (unreadable, not an image, too small)."""
    try:
        check_min_side(path, check_file(path))
        return None
    except DataError as exc:
        # The message starts with the path; keep only the reason and fix.
        return str(exc).split(": ", 1)[-1]


def discover(data_dir, *, unknown_classes="use", validate=True) -> DatasetIndex:
    """Index a class-per-folder dataset.

    Layout "kvasir-v2" (at least half of the folders carry canonical names): class order
    is always the 8 :data:`KVASIR_V2_CLASSES`, so models trained on partial copies keep
    the same outputs; other folder names are "unknown" and appended (sorted) when
    ``unknown_classes="use"``, ignored with ``"skip"``. Any other layout: the classes are
    the sorted folder names, and folders without a usable image are dropped.
    """
    if unknown_classes not in ("use", "skip"):
        raise DataError(f"unknown_classes must be 'use' or 'skip', not {unknown_classes!r}")
    root = resolve_root(data_dir)
    warnings = []

    def warn(msg):
        warnings.append(msg)
        log.warning(msg)

    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name))
    if not folders:
        raise DataError(f"no class folders in {root}: expected <class>/<image>.jpg folders "
                        f"(e.g. kvasir-dataset-v2/polyps/*.jpg); {_GET_DATA}")
    layout, class_names = _choose_classes(root, folders, unknown_classes, warn)
    per_class, skipped = _files_by_class(root, class_names)
    if validate:
        _validate(root, class_names, per_class, skipped)
    class_names = _drop_empty(root, layout, class_names, per_class, warn)
    items = []
    for label, name in enumerate(class_names):
        items.extend((f.relative_to(root).as_posix(), label) for f in per_class[name])
    _warn_skipped(root, skipped, warn)
    if not items:
        raise DataError(f"no usable images in {root} (folders: {', '.join(folders)}); {_GET_DATA}")
    if layout == "class-folders":
        log.info("%s: classes derived from folder names: %s", root, ", ".join(class_names))
    groups = read_groups(root, items)
    if groups is not None:
        unlisted = sum(1 for rel, _ in items if groups[rel] == rel)
        if unlisted:
            warn(f"{root / GROUPS_FILENAME}: {unlisted} of {len(items)} image(s) are not listed; "
                 "each is split as its own group (regenerate the patch index if they share sources)")
    return DatasetIndex(root=root, class_names=class_names, items=items, skipped=skipped,
                        layout=layout, warnings=warnings, groups=groups)


def _choose_classes(root: Path, folders: list, unknown_classes: str, warn):
    """(layout, class names in model-output order) for the class folders found (see :func:`discover`)."""
    canonical = [f for f in folders if f in KVASIR_V2_CLASSES]
    unknown = [f for f in folders if f not in KVASIR_V2_CLASSES]
    if not (canonical and len(canonical) >= len(unknown)):
        return "class-folders", list(folders)
    missing = [c for c in KVASIR_V2_CLASSES if c not in folders]
    if missing:
        warn(f"{root}: {len(missing)} of the 8 Kvasir v2 classes have no folder: {', '.join(missing)}")
    if unknown:
        action = ("used as extra classes" if unknown_classes == "use"
                  else "skipped (unknown_classes='skip' / --skip-unknown)")
        warn(f"{root}: folder(s) not among the Kvasir v2 classes: {', '.join(unknown)}: {action}")
    return "kvasir-v2", list(KVASIR_V2_CLASSES) + (unknown if unknown_classes == "use" else [])


def _files_by_class(root: Path, class_names: list):
    """({class: [image paths]}, skipped): files with an image extension; the rest are skipped."""
    per_class, skipped = {}, []
    for name in class_names:
        cdir = root / name
        good = []
        for f in _list_files(cdir) if cdir.is_dir() else []:
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                good.append(f)
            else:
                skipped.append((f.relative_to(root).as_posix(), f"not an image file (extension "
                                f"{f.suffix or 'none'}): remove it from the class folder"))
        per_class[name] = good
    return per_class, skipped


def _validate(root: Path, class_names: list, per_class: dict, skipped: list) -> None:
    """Header-check every file in parallel; failures move from ``per_class`` to ``skipped``."""
    to_check = [f for name in class_names for f in per_class[name]]
    if not to_check:
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = dict(zip(to_check, pool.map(_check, to_check)))
    for name in class_names:
        kept = []
        for f in per_class[name]:
            if reasons[f] is None:
                kept.append(f)
            else:
                skipped.append((f.relative_to(root).as_posix(), reasons[f]))
        per_class[name] = kept


def _warn_skipped(root: Path, skipped: list, warn) -> None:
    """One warning with a count and an example for too-small images, one for all other skips."""
    small = [s for s in skipped if s[1].startswith(TOO_SMALL)]
    bad = [s for s in skipped if not s[1].startswith(TOO_SMALL)]
    if bad:
        warn(f"{root}: skipped {len(bad)} unreadable or non-image file(s), e.g. {bad[0][0]} ({bad[0][1]})")
    if small:
        warn(f"{root}: skipped {len(small)} image(s) smaller than {MIN_IMAGE_SIDE} px on the shorter "
             f"side, e.g. {small[0][0]} ({small[0][1]})")


def _drop_empty(root: Path, layout: str, class_names: list, per_class: dict, warn) -> list:
    """Warn about class folders without a usable image; drop them unless the layout is kvasir-v2."""
    for name in class_names:
        if (root / name).is_dir() and not per_class[name]:
            warn(f"{root / name}: class folder has no usable image: "
                 + ("kept in the canonical class list with 0 images" if layout == "kvasir-v2"
                    else "class dropped") + "; add images or remove the folder")
    if layout == "class-folders":
        return [n for n in class_names if per_class[n]]
    return class_names
