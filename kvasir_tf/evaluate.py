"""Evaluate the ACTUAL artifact (Keras model or .tflite through ai-edge-litert) on a run's split.

A .tflite is fed exactly as a device feeds it: raw pixels quantized with the scale/zero point
from its JSON sidecar, output dequantized the same way. The test images come from the run's
split manifest, so every model in a comparison sees the same images.

    kvasir-evaluate MODEL --data-dir DATA [--run RUN_DIR | --manifest split.json]
                                 [--split test] [--out DIR] [--batch-size 32]
    kvasir-evaluate MODEL.tflite --latency [--threads 1] [--runs 50]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import kvasir_tf
from kvasir_tf import rundir, runtime
from kvasir_tf.errors import KvasirError, cli
from kvasir_tf.file_types import is_tflite_file
from kvasir_tf.scoring import keras_predict

DEFAULT_BATCH = 32
DEFAULT_LATENCY_RUNS = 50
LATENCY_WARMUP = 5
REPORT_NAME = "eval_report.json"
TABLE_NAME = "eval_table.txt"
CM_PNG_NAME = "confusion_matrix.png"


class KerasModel:
    """A Keras model (run directory or .keras file) with the same ``predict`` as a TFLiteModel."""

    def __init__(self, path, trust_model=False):
        from kvasir_tf.model_io import image_size_of
        src = rundir.load_source(path, trust_model=trust_model)
        self.path, self.model, self.class_names = Path(path), src.model, src.class_names
        self.image_size = image_size_of(self.model)
        self.num_classes = int(self.model.outputs[0].shape[-1])
        self.sidecar = None

    def predict(self, images, batch_size=DEFAULT_BATCH) -> np.ndarray:
        images = runtime.check_images(images, self.image_size)
        if len(images) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        return keras_predict(self.model)(images, batch_size)


class Predictor:
    """One loaded artifact (Keras or TFLite, told apart by content) mapping uint8 pixels to probabilities."""

    def __init__(self, model_path, num_threads=None, trust_model=False):
        self.path = Path(model_path)
        if not self.path.exists():
            raise KvasirError(f"model {self.path} not found; pass a .tflite written by "
                              "tools/convert.py or a .keras checkpoint")
        if self.path.is_file() and is_tflite_file(self.path):
            self.kind, self.impl = "tflite", runtime.TFLiteModel(self.path, num_threads)
            src = Path(self.impl.sidecar["source"]) if self.impl.sidecar else None
            self.run_dir = rundir.run_dir_of(src) if src is not None and src.exists() else None
        else:
            self.kind, self.impl = "keras", KerasModel(self.path, trust_model)
            self.run_dir = rundir.run_dir_of(self.path)
        self.sidecar, self.class_names = self.impl.sidecar, self.impl.class_names
        self.image_size, self.num_classes = self.impl.image_size, self.impl.num_classes

    def predict(self, images, batch_size=DEFAULT_BATCH) -> np.ndarray:
        return self.impl.predict(images, batch_size)


def predict(model_path, images_uint8, batch_size=DEFAULT_BATCH) -> np.ndarray:
    """Probabilities [N, C] from a Keras or TFLite model for raw uint8 pixels [N, S, S, 3]."""
    return Predictor(model_path).predict(images_uint8, batch_size)


def latency(model_path, threads=1, runs=DEFAULT_LATENCY_RUNS, warmup=LATENCY_WARMUP) -> dict:
    """Host latency of one single-image invoke (ai-edge-litert, XNNPACK, num_threads) in ms."""
    if not (Path(model_path).is_file() and is_tflite_file(model_path)):
        raise KvasirError(f"latency is measured on .tflite files; convert {model_path} first")
    m = runtime.TFLiteModel(model_path, num_threads=threads)
    m.resize_batch(1)
    it = m.interpreter
    x = runtime.quantize_input(np.full((1, m.image_size, m.image_size, 3), 128, np.uint8), m.input_detail())
    it.set_tensor(it.get_input_details()[0]["index"], x)
    for _ in range(warmup):
        it.invoke()
    times = []
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times)
    return {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
            "mean_ms": float(t.mean()), "min_ms": float(t.min()), "runs": int(runs),
            "threads": int(threads), "runtime": "ai-edge-litert (XNNPACK)"}


def evaluate(model_path, split, subset="test", batch_size=DEFAULT_BATCH, *, out_dir=None,
             data_dir=None, predictor=None, mask_overlays=False) -> dict:
    """Metrics of the artifact on ``split``'s subset (a Split, run dir or split.json).

    ``mask_overlays`` must be the run's own setting (images are preprocessed as in training).
    """
    from kvasir_tf.metrics import format_report, save_confusion_matrix_png
    from kvasir_tf.data.split import as_split
    from kvasir_tf.scoring import score
    p = predictor or Predictor(model_path)
    sp = as_split(split, data_dir)
    report = score(p.predict, sp, subset, image_size=p.image_size,
                   class_names=p.class_names, num_classes=p.num_classes, batch_size=batch_size,
                   mask_overlays=mask_overlays, name=str(model_path))
    report.update(model=str(model_path), kind=p.kind)
    if p.sidecar:
        report["tflite_mode"] = p.sidecar.get("mode")
    report["confidence"] = confidence_report(p, sp, subset, report, batch_size=batch_size,
                                             mask_overlays=mask_overlays)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        (out / TABLE_NAME).write_text(format_report(report) + "\n")
        save_confusion_matrix_png(report, out / CM_PNG_NAME)
        report["outputs"] = [str(out / n) for n in (REPORT_NAME, TABLE_NAME, CM_PNG_NAME)]
    return report


def confidence_report(p, split, subset, report, *, batch_size=DEFAULT_BATCH,
                      mask_overlays=False) -> dict:
    """Calibration and selective prediction of ``report``'s probabilities, with the temperature
    and threshold the artifact's sidecar carries, else fitted here on the split's validation
    images (never on the subset scored: none is fitted when that is val itself)."""
    from kvasir_tf import confidence
    from kvasir_tf.scoring import calibrate_on_val
    fitted, source = confidence.from_sidecar(p.sidecar), "sidecar"
    if fitted is None:
        fitted = None if subset == "val" else calibrate_on_val(p, split, batch_size=batch_size,
                                                               mask_overlays=mask_overlays)
        source = "fitted on val here" if fitted else None
    rep = confidence.report(report["probabilities"], report["labels"], floor=confidence.floor_of(p.sidecar),
                            fitted=fitted, groups=split.groups(subset))
    rep["fitted_from"] = source
    return rep


def format_confusion(report) -> str:
    names = report["class_names"]
    w = max(6, max(len(n) for n in names) + 1)
    lines = ["confusion matrix (rows true, columns predicted)",
             " " * w + "".join(f"{i:>6d}" for i in range(len(names)))]
    for i, (name, row) in enumerate(zip(names, report["confusion_matrix"])):
        lines.append(f"{name[:w - 1]:<{w}}" + "".join(f"{v:>6d}" for v in row))
    return "\n".join(lines)


def _parser():
    ap = argparse.ArgumentParser(prog="python -m kvasir_tf.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help=".tflite (with its sidecar) or .keras model, or a run directory")
    ap.add_argument("--data-dir", help="dataset root (replaces the root stored in split.json)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--run", help="run directory whose split.json picks the images")
    g.add_argument("--manifest", help="split.json to use")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--out", help="directory for eval_report.json, eval_table.txt, confusion_matrix.png")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--latency", action="store_true",
                    help="only measure host latency of a .tflite (no data needed)")
    ap.add_argument("--threads", type=int, default=1, help="--latency: interpreter threads")
    ap.add_argument("--runs", type=int, default=DEFAULT_LATENCY_RUNS, help="--latency: timed invokes")
    ap.add_argument("--trust-model", action="store_true",
                    help="load an .h5 model whose Lambda layers run stored Python code (files you made only)")
    kvasir_tf.add_verbose_flag(ap)
    return ap


@cli
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        raise KvasirError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.latency:
        if args.threads < 1 or args.runs < 1:
            raise KvasirError("--threads and --runs must be >= 1")
        r = latency(args.model, threads=args.threads, runs=args.runs)
        print(f"{args.model}: median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms "
              f"({r['runs']} runs, {r['threads']} thread(s), {r['runtime']})")
        return 0
    p = Predictor(args.model, trust_model=args.trust_model)
    manifest = args.manifest or args.run or p.run_dir
    if manifest is None:
        raise KvasirError(f"cannot tell which split {args.model} belongs to; pass --run runs/NAME "
                          "or --manifest runs/NAME/split.json")
    run = args.run or p.run_dir
    mask_overlays = bool(rundir.read_config(run).get("mask_overlays")) if run and rundir.is_run_dir(run) else False
    report = evaluate(args.model, manifest, args.split, args.batch_size, out_dir=args.out,
                      data_dir=args.data_dir, predictor=p, mask_overlays=mask_overlays)
    from kvasir_tf.metrics import format_report
    print(f"{args.model} ({p.kind}) on {report['n']} {args.split} images")
    print(format_report(report))
    print(format_confusion(report))
    from kvasir_tf.confidence import format_report as format_confidence
    print(format_confidence(report["confidence"]))
    if report["confidence"]["fitted_from"]:
        print(f"  (temperature and threshold: {report['confidence']['fitted_from']})")
    for f in report.get("outputs", []):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
