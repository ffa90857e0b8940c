"""Deterministic procedural Kvasir-like endoscopy images: the embedded demo dataset.

The real Kvasir v2 download is not redistributable, so ``make demo`` and the tests train on
images rendered here, in the same layout (``OUT/<class>/<name>.jpg``) with a lesion mask per
image (``OUT/_masks/<class>/<name>.png``, 255 = the structure that defines the class) for the
saliency work. Each class has its defining structure (polyp dome, blue dye, z-line, pylorus...),
large and clear enough that a width-0.35 MobileNetV2 learns it at 64 px in the demo's budget
(``tools/synthetic_learnability.py`` measures that); nuisance variation (field of view,
lighting, colour, blur, the green ScopeGuide inset and burnt-in text on random images of every
class) and confusable pairs (polyps vs dyed-lifted polyps with little dye, esophagitis vs the
normal z-line it grows from, lifted vs resected dyed areas) keep it from being trivial.

Every image is rendered from its own generator seeded by ``(seed, class, index)``: the same
seed gives byte-identical files, and regenerating one class leaves the others unchanged.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from kvasir_tf.errors import KvasirError, cli

from kvasir_tf.data.classes import KVASIR_V2_CLASSES
from kvasir_tf.data.discovery import MASKS_DIRNAME
from kvasir_tf.data.synthetic_render import CLASS_STYLE, MIN_SIZE, render

log = logging.getLogger(__name__)

DEMO_PER_CLASS = 200
DEMO_SIZE = 160
STAMP_NAME = "_synthetic.json"
NAME_PREFIX = "synth_"
# Bump when the renderer changes so ensure_demo_data() regenerates stale demo folders.
GENERATOR_VERSION = 2
JPEG_QUALITY = 92

# ----------------------------------------------------------------------------- dataset
def image_rng(seed: int, class_name: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(class_name.encode()), int(index)])


def image_name(index: int) -> str:
    """File stem of the index-th image of a class (same stem for its mask)."""
    return f"{NAME_PREFIX}{index:05d}"


def _params(per_class: int, size: int, seed: int, classes) -> dict:
    return {"generator_version": GENERATOR_VERSION, "per_class": int(per_class), "size": int(size),
            "seed": int(seed), "classes": list(classes)}


def generate(out_dir, per_class: int = DEMO_PER_CLASS, size: int = DEMO_SIZE, seed: int = 0,
             classes=KVASIR_V2_CLASSES) -> Path:
    """Write ``per_class`` images + masks per class under ``out_dir``; returns ``out_dir``."""
    out = Path(out_dir)
    if per_class < 1:
        raise KvasirError(f"--per-class must be >= 1 (got {per_class})")
    classes = list(classes)
    unknown = [k for k in classes if k not in CLASS_STYLE]
    if unknown:
        raise KvasirError(f"unknown synthetic class(es) {', '.join(unknown)}; choose from {', '.join(CLASS_STYLE)}")
    if size < MIN_SIZE:
        raise KvasirError(f"image size {size} is too small for synthetic images; use --size >= {MIN_SIZE}")
    if out.exists() and not out.is_dir():
        raise KvasirError(f"{out} exists and is not a directory; pick another --out")
    for k in classes:
        img_dir, mask_dir = out / k, out / MASKS_DIRNAME / k
        img_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        # Drop images of an earlier, larger run so the folder holds exactly this dataset.
        for stale in [*img_dir.glob(f"{NAME_PREFIX}*.jpg"), *mask_dir.glob(f"{NAME_PREFIX}*.png")]:
            stale.unlink()
        for i in range(per_class):
            rgb, mask = render(k, size, image_rng(seed, k, i))
            ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            ok2, png = cv2.imencode(".png", mask)
            if not (ok and ok2):  # pragma: no cover - opencv built without codecs
                raise KvasirError("opencv could not encode JPEG/PNG; reinstall opencv-python-headless")
            (img_dir / f"{image_name(i)}.jpg").write_bytes(jpg.tobytes())
            (mask_dir / f"{image_name(i)}.png").write_bytes(png.tobytes())
    (out / STAMP_NAME).write_text(json.dumps(_params(per_class, size, seed, classes), indent=1))
    return out


def _complete(out: Path, params: dict) -> bool:
    stamp = out / STAMP_NAME
    try:
        if json.loads(stamp.read_text()) != params:
            return False
    except (OSError, ValueError):
        return False
    for k in params["classes"]:
        for i in range(params["per_class"]):
            stem = image_name(i)
            if not (out / k / f"{stem}.jpg").is_file() or not (out / MASKS_DIRNAME / k / f"{stem}.png").is_file():
                return False
    return True


def ensure_demo_data(out_dir, per_class: int = DEMO_PER_CLASS, size: int = DEMO_SIZE, seed: int = 0,
                     classes=KVASIR_V2_CLASSES) -> Path:
    """Generate the demo dataset unless ``out_dir`` already holds it with the same parameters."""
    out = Path(out_dir)
    if _complete(out, _params(per_class, size, seed, classes)):
        log.info("demo data already present in %s", out)
        return out
    return generate(out, per_class=per_class, size=size, seed=seed, classes=classes)


@cli
def main(argv=None) -> int:
    """Generate the synthetic Kvasir-like dataset from the command line."""
    p = argparse.ArgumentParser(prog="kvasir-synth", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (Kvasir v2 class-per-folder layout)")
    p.add_argument("--per-class", type=int, default=DEMO_PER_CLASS, help="images per class")
    p.add_argument("--size", type=int, default=DEMO_SIZE, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", nargs="+", default=list(KVASIR_V2_CLASSES), metavar="CLASS",
                   help="subset of the 8 Kvasir v2 class names")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    out = generate(a.out, per_class=a.per_class, size=a.size, seed=a.seed, classes=a.classes)
    dt = time.perf_counter() - t0
    n = a.per_class * len(a.classes)
    print(f"wrote {n} images ({a.per_class} per class x {len(a.classes)} classes, {a.size}px, "
          f"seed {a.seed}) with masks to {out} in {dt:.1f}s")
    for k in a.classes:
        print(f"  {k:24s} {a.per_class:5d}  masks: {out / MASKS_DIRNAME / k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
