"""Kvasir-SEG (``images/`` + ``masks/``) and the ``polyp`` vs ``mucosa`` patch dataset built from it.

Kvasir-SEG's 1000 (here 500) polyp frames with expert masks are the only real Kvasir images
available offline. Cropping them into patches that are mostly polyp and patches of plain mucosa
gives a real-image 2-class task in the class-per-folder layout, with the crop's mask at
``OUT/_masks/<class>/<name>.png`` for saliency localisation.

Mucosa crops must not show the frame's black border or burnt-in overlays (a blanked or green
ScopeGuide inset at the lower left, text at the upper left), or a classifier could separate the
classes by those. :func:`fov_mask` finds the endoscope's field of view per image; every crop of
either class lies entirely inside it.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kvasir_tf.data.discovery import MASKS_DIRNAME
from kvasir_tf.data.imageio import IMAGE_EXTENSIONS, MIN_IMAGE_SIDE, read_rgb
from kvasir_tf.data.fov import fov_mask
from kvasir_tf.errors import DataError, KvasirError, cli

log = logging.getLogger(__name__)

IMAGES_DIRNAME = "images"
SEG_MASKS_DIRNAME = "masks"
ARCHIVE_DIRNAME = "Kvasir-SEG"  # what the official zip unpacks to
# Kvasir-SEG masks are JPEGs: compression noise around 0 and 255, so threshold in the middle.
MASK_THRESHOLD = 128
PATCH_CLASSES = ("mucosa", "polyp")
PATCH_INDEX_NAME = "_patches.csv"  # top-level file: discovery only looks at folders

DEFAULT_PATCH_SIZE = 128
DEFAULT_PATCHES_PER_IMAGE = 2
DEFAULT_POLYP_MIN_FRACTION = 0.6
# Crop sides as fractions of the image's shorter side, largest first: frames of any resolution
# give crops of comparable content, and small polyps still get crops that are mostly polyp.
DEFAULT_SCALES = (0.35, 0.25, 0.18)

@dataclass(frozen=True)
class SegSample:
    """One Kvasir-SEG image and its polyp mask."""

    image: Path
    mask: Path

    @property
    def name(self) -> str:
        return self.image.stem


def resolve_seg_dir(seg_dir) -> Path:
    """``seg_dir`` itself, or its ``Kvasir-SEG/`` folder as unpacked from the official zip."""
    seg_dir = Path(seg_dir).expanduser()
    if not seg_dir.is_dir():
        raise DataError(f"Kvasir-SEG folder {seg_dir} does not exist; pass the folder holding "
                        f"{IMAGES_DIRNAME}/ and {SEG_MASKS_DIRNAME}/")
    if not (seg_dir / IMAGES_DIRNAME).is_dir() and (seg_dir / ARCHIVE_DIRNAME / IMAGES_DIRNAME).is_dir():
        return seg_dir / ARCHIVE_DIRNAME
    return seg_dir


def _image_files(folder: Path) -> dict:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")}


def load_kvasir_seg(seg_dir) -> list:
    """Pair ``images/<name>.*`` with ``masks/<name>.*``; unmatched files are skipped with a count."""
    root = resolve_seg_dir(seg_dir)
    for sub in (IMAGES_DIRNAME, SEG_MASKS_DIRNAME):
        if not (root / sub).is_dir():
            raise DataError(f"{root / sub} is missing: a Kvasir-SEG folder holds {IMAGES_DIRNAME}/ and "
                            f"{SEG_MASKS_DIRNAME}/ with the same file names; pass the unpacked Kvasir-SEG folder")
    images, masks = _image_files(root / IMAGES_DIRNAME), _image_files(root / SEG_MASKS_DIRNAME)
    common = sorted(images.keys() & masks.keys())
    no_mask, no_image = sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())
    if not common:
        raise DataError(f"{root}: no image in {IMAGES_DIRNAME}/ has a mask of the same name in "
                        f"{SEG_MASKS_DIRNAME}/ ({len(images)} images, {len(masks)} masks); "
                        "masks must share the image's file name")
    if no_mask or no_image:
        example = (no_mask or no_image)[0]
        log.warning("%s: skipped %d image(s) without a mask and %d mask(s) without an image (e.g. %s); "
                    "give each mask its image's file name", root, len(no_mask), len(no_image), example)
    return [SegSample(images[n], masks[n]) for n in common]


def read_mask(path) -> np.ndarray:
    """A Kvasir-SEG mask as a boolean (H, W) array (True = polyp)."""
    rgb = read_rgb(path)
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2]) >= MASK_THRESHOLD


# ----------------------------------------------------------------------------- patches
@dataclass(frozen=True)
class PatchRecord:
    """Where a patch came from: its source image and crop window (pixels of the source)."""

    cls: str
    file: str       # name under OUT/<cls>/ and OUT/_masks/<cls>/
    source: str     # Kvasir-SEG image name (split by this: patches of one image are not independent)
    x: int
    y: int
    side: int


@dataclass
class PatchSummary:
    """What :func:`build_patch_dataset` wrote, and what it could not use."""

    out_dir: Path
    counts: dict
    images_used: int
    images_total: int
    skipped: list = field(default_factory=list)   # [(image name, reason)]
    seconds: float = 0.0
    patches: list = field(default_factory=list)   # [PatchRecord], also in OUT/_patches.csv

    def format(self) -> str:
        lines = [f"patch dataset {self.out_dir}: " + ", ".join(f"{k} {v}" for k, v in self.counts.items())
                 + f" from {self.images_used} of {self.images_total} images in {self.seconds:.1f}s"]
        reasons = {}
        for _name, why in self.skipped:
            reasons[why] = reasons.get(why, 0) + 1
        for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            lines.append(f"  skipped {n} image(s): {why}")
        return "\n".join(lines)


def _window_sums(mask: np.ndarray, side: int) -> np.ndarray:
    """Sum of ``mask`` over every side x side window, indexed by the window's top-left corner."""
    ii = cv2.integral(mask.astype(np.uint8), sdepth=cv2.CV_32S)
    return ii[side:, side:] - ii[:-side, side:] - ii[side:, :-side] + ii[:-side, :-side]


def _pick(ok: np.ndarray, side: int, n: int, rng: np.random.Generator, taken: list) -> list:
    """Up to ``n`` random top-left corners where ``ok``, not overlapping crops already taken."""
    ys, xs = np.nonzero(ok)
    free = np.ones(len(ys), bool)

    def block(ty, tx, ts):  # overlap below 25% of a side is allowed
        d = max(side, ts) * 0.75
        free[(np.abs(ys - ty) < d) & (np.abs(xs - tx) < d)] = False

    for t in taken:
        block(*t)
    out = []
    while len(out) < n and free.any():
        j = int(rng.choice(np.flatnonzero(free)))
        win = (int(ys[j]), int(xs[j]), side)
        taken.append(win)
        out.append(win)
        block(*win)
    return out


def _crops_for_image(img, polyp, fov, n, scales, min_fraction, rng):
    """Crop windows (y, x, side) for each class, mucosa crops at the polyp crops' scales."""
    h, w = polyp.shape
    taken, polyp_crops, used_sides = [], [], []
    for s in scales:
        side = int(round(s * min(h, w)))
        if side < 8 or side >= min(h, w):
            continue
        area = side * side
        inside = _window_sums(fov, side) == area
        frac = _window_sums(polyp, side)
        got = _pick(inside & (frac >= min_fraction * area), side, n - len(polyp_crops), rng, taken)
        polyp_crops += got
        used_sides += [side] * len(got)
        if len(polyp_crops) == n:
            break
    mucosa_crops = []
    # Same crop sizes as the polyp crops (or the largest scale), so size is not a class cue.
    sides = used_sides or [int(round(scales[0] * min(h, w)))]
    for i in range(n):
        side = sides[i % len(sides)]
        if side < 8 or side >= min(h, w):
            continue
        area = side * side
        ok = (_window_sums(fov, side) == area) & (_window_sums(polyp, side) == 0)
        mucosa_crops += _pick(ok, side, 1, rng, taken)
    return {"polyp": polyp_crops, "mucosa": mucosa_crops}


def build_patch_dataset(seg_dir, out_dir, patch_size: int = DEFAULT_PATCH_SIZE,
                        patches_per_image: int = DEFAULT_PATCHES_PER_IMAGE,
                        polyp_min_fraction: float = DEFAULT_POLYP_MIN_FRACTION, seed: int = 0,
                        scales=DEFAULT_SCALES, limit: int | None = None) -> PatchSummary:
    """Write ``OUT/{polyp,mucosa}/<image>_<k>.png`` crops (+ masks), balanced between the classes.

    ``OUT/_patches.csv`` records each patch's source image and crop window.

    Both classes come only from crops fully inside the field of view; ``polyp`` crops have at
    least ``polyp_min_fraction`` polyp pixels, ``mucosa`` crops none. ``limit`` uses only the
    first N image pairs (sorted by name).
    """
    _check_patch_args(patch_size, patches_per_image, polyp_min_fraction, scales)
    t0 = time.perf_counter()
    samples = load_kvasir_seg(seg_dir)
    if limit is not None:
        samples = samples[:limit]
    out = Path(out_dir)
    _prepare_out(out)
    for cls in PATCH_CLASSES:
        (out / cls).mkdir(parents=True, exist_ok=True)
        (out / MASKS_DIRNAME / cls).mkdir(parents=True, exist_ok=True)
    # Write every candidate crop as it is found (one decode per image), balance afterwards.
    written = {k: [] for k in PATCH_CLASSES}
    skipped = []
    for sample in samples:
        why = _write_image_patches(sample, out, written, patch_size, patches_per_image,
                                   polyp_min_fraction, seed, tuple(scales))
        if why is not None:
            skipped.append((sample.name, why))
    records = _balance(out, written, seed)
    _write_index(out, records)
    return PatchSummary(out_dir=out, counts={k: sum(r.cls == k for r in records) for k in PATCH_CLASSES},
                        images_used=len({r.source for r in records}), images_total=len(samples),
                        skipped=skipped, seconds=time.perf_counter() - t0, patches=records)


def _check_patch_args(patch_size, patches_per_image, polyp_min_fraction, scales) -> None:
    if not 0 < polyp_min_fraction <= 1:
        raise KvasirError(f"polyp_min_fraction must be in (0, 1], got {polyp_min_fraction}")
    if patch_size < MIN_IMAGE_SIDE or patches_per_image < 1:  # smaller: discovery would skip them
        raise KvasirError(f"need --patch-size >= {MIN_IMAGE_SIDE} and --patches-per-image >= 1 "
                          f"(got {patch_size}, {patches_per_image})")
    if not scales or not all(0 < s < 1 for s in scales):
        raise KvasirError(f"crop scales must be fractions in (0, 1), got {scales}")


def _write_image_patches(sample: SegSample, out: Path, written: dict, patch_size, n, min_fraction,
                         seed, scales) -> str | None:
    """Crop one image into ``out`` and append its PatchRecords to ``written``; or why it gave none."""
    try:
        img = read_rgb(sample.image)
        polyp = read_mask(sample.mask)
    except DataError as exc:
        return f"unreadable ({str(exc).split(': ', 1)[-1]})"
    if polyp.shape != img.shape[:2]:
        return "mask size differs from image size"
    rng = np.random.default_rng([int(seed), zlib.crc32(sample.name.encode())])
    crops = _crops_for_image(img, polyp, fov_mask(img), n, scales, min_fraction, rng)
    if not crops["polyp"] and not crops["mucosa"]:
        return "no crop fits inside the field of view"
    for cls in PATCH_CLASSES:
        for k, (y, x, side) in enumerate(crops[cls]):
            crop = cv2.resize(img[y:y + side, x:x + side], (patch_size, patch_size),
                              interpolation=cv2.INTER_AREA)
            mcrop = cv2.resize(polyp[y:y + side, x:x + side].astype(np.uint8) * 255,
                               (patch_size, patch_size), interpolation=cv2.INTER_NEAREST)
            if cls == "polyp" and (mcrop > 0).mean() < min_fraction:
                continue  # resampling nudged it under the threshold
            name = f"{sample.name}_{k}.png"
            cv2.imwrite(str(out / cls / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(out / MASKS_DIRNAME / cls / name), mcrop)
            written[cls].append(PatchRecord(cls, name, sample.name, x, y, side))
    return None


def _balance(out: Path, written: dict, seed) -> list:
    """Keep an equal, seeded random subset of the larger class (deleting the rest); sorted records."""
    n = min(len(v) for v in written.values())
    rng = np.random.default_rng(seed)
    records = []
    for cls in PATCH_CLASSES:
        keep = set(rng.choice(len(written[cls]), n, replace=False).tolist()) if len(written[cls]) > n \
            else set(range(n))
        for i, rec in enumerate(written[cls]):
            if i in keep:
                records.append(rec)
            else:
                (out / cls / rec.file).unlink()
                (out / MASKS_DIRNAME / cls / rec.file).unlink()
    records.sort(key=lambda r: (r.cls, r.file))
    return records


def _write_index(out: Path, records: list) -> None:
    """``OUT/_patches.csv``: each patch's source image and crop window (read by discovery)."""
    with open(out / PATCH_INDEX_NAME, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["class", "file", "source", "x", "y", "side"])
        writer.writerows([r.cls, r.file, r.source, r.x, r.y, r.side] for r in records)


def _prepare_out(out: Path) -> None:
    """Remove the patches of an earlier run in ``out``; refuse to mix with anything else."""
    if out.exists() and not out.is_dir():
        raise KvasirError(f"{out} exists and is not a directory; pick another --out")
    index = out / PATCH_INDEX_NAME
    if index.is_file():
        with open(index, newline="") as fh:
            for row in csv.DictReader(fh):
                for p in (out / row["class"] / row["file"], out / MASKS_DIRNAME / row["class"] / row["file"]):
                    p.unlink(missing_ok=True)
        index.unlink()
    for cls in PATCH_CLASSES:
        for d in (out / cls, out / MASKS_DIRNAME / cls):
            if d.is_dir() and any(d.iterdir()):
                raise KvasirError(f"{d} already holds files not written by this builder; "
                                  "pick an empty --out")


# ----------------------------------------------------------------------------- CLI
def add_patch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seg-dir", required=True, help="Kvasir-SEG folder (with images/ and masks/)")
    p.add_argument("--out", required=True, help="output folder (class-per-folder: polyp/, mucosa/, _masks/)")
    p.add_argument("--patch-size", type=int, default=DEFAULT_PATCH_SIZE, help="side of the written patches")
    p.add_argument("--patches-per-image", type=int, default=DEFAULT_PATCHES_PER_IMAGE,
                   help="crops per class per image (before balancing)")
    p.add_argument("--polyp-min-fraction", type=float, default=DEFAULT_POLYP_MIN_FRACTION,
                   help="minimum fraction of polyp pixels in a polyp crop")
    p.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES),
                   help="crop sides as fractions of the image's shorter side, largest first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")


def run_patches(args) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    summary = build_patch_dataset(args.seg_dir, args.out, patch_size=args.patch_size,
                                  patches_per_image=args.patches_per_image,
                                  polyp_min_fraction=args.polyp_min_fraction, seed=args.seed,
                                  scales=args.scales, limit=args.limit)
    print(summary.format())
    if not any(summary.counts.values()):
        raise DataError(f"no patches written from {args.seg_dir}: check that masks mark the polyps "
                        "(white on black) or lower --polyp-min-fraction")
    return 0


@cli
def main(argv=None) -> int:
    """``python -m kvasir_tf.data.kvasir_seg patches --seg-dir DIR --out DIR``."""
    p = argparse.ArgumentParser(prog="python -m kvasir_tf.data.kvasir_seg", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    add_patch_args(sub.add_parser("patches", help="build the polyp vs mucosa patch dataset"))
    args = p.parse_args(argv)
    return run_patches(args)


if __name__ == "__main__":
    sys.exit(main())
