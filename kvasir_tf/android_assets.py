"""Copy an int8 model, its JSON sidecar and labels.txt into the Android app's assets, checked.

    kvasir-android-assets RUN_DIR | EXPORT_DIR | MODEL.tflite [ASSETS_DIR] [--test-image IMG]

The source is a training run (its ``export/`` folder is used), an ``export/`` folder, or one
``.tflite``. The model must be the full-integer one (``tools/convert.py RUN --int8``); its
sidecar must describe exactly this file (sha256) and ``labels.txt`` must list the sidecar's
classes in order, or nothing is copied. The app then finds ``model.tflite``, ``model.json``
and ``labels.txt`` in ``mobile/android/app/src/main/assets`` (the default ASSETS_DIR) and checks
the sha256 again at start-up. ``--test-image`` (default: the run's first test-split image, when
the run and its data are on this machine) becomes ``bench_image.*``, the benchmark's input.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from kvasir_tf import artifact, rundir
from kvasir_tf.device_preprocessing import input_map
from kvasir_tf.errors import KvasirError, cli

REPO = Path(__file__).resolve().parents[1]   # the checkout (the package is installed editable)
DEFAULT_ASSETS = REPO / "mobile" / "android" / "app" / "src" / "main" / "assets"
MODEL_NAME, SIDECAR_NAME, LABELS_NAME = "model.tflite", "model.json", "labels.txt"
BENCH_STEM = "bench_image"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _int8_models(folder: Path) -> list:
    out = []
    for p in sorted(folder.glob("*.tflite")):
        side = artifact.read_sidecar(p)
        if side and (side.get("input") or {}).get("dtype") == "int8":
            out.append(p)
    return out


def find_model(source) -> Path:
    """The int8 .tflite named by a run directory, an export/ folder or the file itself."""
    src = Path(source)
    if src.is_file():
        return src
    if not src.is_dir():
        raise KvasirError(f"{src}: no such file or folder; pass runs/NAME, runs/NAME/export or a .tflite")
    folder = src / rundir.EXPORT_DIR if (src / rundir.EXPORT_DIR).is_dir() else src
    models = _int8_models(folder)
    if not models:
        raise KvasirError(f"{folder}: no int8 .tflite with a sidecar; convert first: kvasir-convert RUN --int8")
    if len(models) > 1:
        raise KvasirError(f"{folder}: several int8 models ({', '.join(m.name for m in models)}); pass one .tflite")
    return models[0]


def _default_test_image(model: Path) -> Path | None:
    """The first test-split image of the run the model was exported from, when it is here."""
    from kvasir_tf.data.split import load_manifest
    run = rundir.run_dir_of(model)
    if run is None:
        return None
    try:
        paths = load_manifest(run).paths("test")
    except KvasirError:
        return None
    return next((p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), None)


def check_model_files(model: Path) -> dict:
    """The sidecar of ``model`` after every check the app makes; KvasirError names the fix."""
    side = artifact.load_sidecar(model)          # sha256 of the file against the sidecar
    if side is None:
        raise KvasirError(f"{model}: no sidecar {artifact.sidecar_path_for(model).name} beside it; "
                          "convert with tools/convert.py RUN --int8")
    input_map(side)                               # an int8 input with a scale and zero point
    if (side.get("output") or {}).get("dtype") != "int8":
        raise KvasirError(f"{model}: the output is not int8; the app runs the full-integer model (--int8)")
    labels = model.parent / artifact.LABELS_NAME
    if not labels.is_file():
        raise KvasirError(f"{labels}: missing; tools/convert.py writes it beside the model")
    names = labels.read_text().splitlines()
    while names and not names[-1]:
        names.pop()
    if names != list(side.get("class_names") or []):
        raise KvasirError(f"{labels} does not list the sidecar's class_names in order; "
                          "re-run tools/convert.py --force so both come from one conversion")
    return side


def install_assets(source, assets_dir=DEFAULT_ASSETS, test_image=None) -> dict:
    """Copy model, sidecar and labels (and a benchmark image) into ``assets_dir``; return what was done."""
    model = find_model(source)
    side = check_model_files(model)
    image = Path(test_image) if test_image else _default_test_image(model)
    if image is not None and (not image.is_file() or image.suffix.lower() not in IMAGE_SUFFIXES):
        raise KvasirError(f"--test-image {image}: not a .jpg or .png file")
    assets = Path(assets_dir)
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, assets / MODEL_NAME)
    shutil.copyfile(artifact.sidecar_path_for(model), assets / SIDECAR_NAME)
    shutil.copyfile(model.parent / artifact.LABELS_NAME, assets / LABELS_NAME)
    if artifact.sha256_file(assets / MODEL_NAME) != side["sha256"]:
        raise KvasirError(f"{assets / MODEL_NAME}: the copy's sha256 differs from the sidecar's; "
                          "check the disk and copy again")
    for stale in assets.glob(f"{BENCH_STEM}.*"):
        stale.unlink()
    if image is not None:
        shutil.copyfile(image, assets / f"{BENCH_STEM}{image.suffix.lower()}")
    return {"model": model, "assets": assets, "sha256": side["sha256"], "image_size": side["image_size"],
            "classes": len(side["class_names"]), "test_image": image}


@cli
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="kvasir-android-assets", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="runs/NAME, runs/NAME/export or an int8 .tflite")
    ap.add_argument("assets_dir", nargs="?", default=str(DEFAULT_ASSETS),
                    help="the app's assets folder (default mobile/android/app/src/main/assets)")
    ap.add_argument("--test-image", help="a .jpg/.png for the benchmark action (default: the run's first test image)")
    args = ap.parse_args(argv)
    r = install_assets(args.source, args.assets_dir, args.test_image)
    bench = r["test_image"] or "none (the benchmark uses a grey frame)"
    print(f"installed {r['model']} -> {r['assets']} ({r['image_size']} px, {r['classes']} classes, "
          f"sha256 {r['sha256'][:12]}); benchmark image: {bench}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
