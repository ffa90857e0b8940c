"""Evaluate the ACTUAL artifact (Keras model or .tflite through ai-edge-litert) on a run's split.

A .tflite is fed exactly as a device feeds it: raw pixels quantized with the scale/zero point
from its JSON sidecar, output dequantized the same way. The test images come from the run's
split manifest, so every model in a comparison sees the same images.

    python -m kvasir_tf.evaluate MODEL --data-dir DATA [--run RUN_DIR | --manifest split.json]
                                 [--split test] [--out DIR] [--batch-size 32]
    python -m kvasir_tf.evaluate MODEL.tflite --latency [--threads 1] [--runs 50]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import kvasir_tf  # noqa: F401  (Keras 2 before TensorFlow)
from kvasir_tf import convert as _conv
from kvasir_tf.errors import KvasirError, cli

DEFAULT_BATCH = 32
DEFAULT_LATENCY_RUNS = 50
LATENCY_WARMUP = 5
REPORT_NAME = "eval_report.json"
TABLE_NAME = "eval_table.txt"
CM_PNG_NAME = "confusion_matrix.png"


class Predictor:
    """One loaded model (Keras or TFLite) that maps uint8 pixels [N,S,S,3] to probabilities."""

    def __init__(self, model_path, num_threads=None):
        self.path = Path(model_path)
        if not self.path.exists():
            raise KvasirError(f"model {self.path} not found; pass a .tflite written by "
                              "tools/convert.py or a .keras checkpoint")
        self.sidecar = None
        self.class_names = None
        if self.path.is_file() and _conv.is_tflite_file(self.path):
            self.kind = "tflite"
            self._init_tflite(num_threads)
        else:
            self.kind = "keras"
            src = _conv.load_source(self.path)
            self.model = src.model
            self.image_size = _conv.model_image_size(self.model)
            self.num_classes = int(self.model.outputs[0].shape[-1])
            self.class_names = src.class_names
            self.run_dir = src.path if src.kind == "run" else _conv._run_dir_of(self.path)

    def _init_tflite(self, num_threads):
        """A TFLite flatbuffer (recognised by its magic bytes, whatever the file name)."""
        self.sidecar = _conv.read_sidecar(self.path)
        if self.sidecar is not None:
            if self.sidecar.get("sha256") != _conv.sha256_file(self.path):
                raise KvasirError(f"{_conv.sidecar_path_for(self.path)} does not describe {self.path} "
                                  "(sha256 differs); re-run tools/convert.py --force to rewrite both")
            self.class_names = list(self.sidecar["class_names"])
        try:
            self.interpreter = _conv.make_interpreter(model_path=self.path, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise KvasirError(f"{self.path} does not load in ai-edge-litert: {_conv._first_line(exc)}") from None
        inp = self.interpreter.get_input_details()[0]
        self.image_size = int(inp["shape"][1])
        self.num_classes = int(self.interpreter.get_output_details()[0]["shape"][-1])
        self._batch = 1
        src = Path(self.sidecar["source"]) if self.sidecar else None
        self.run_dir = (src if src is not None and src.is_dir() else
                        _conv._run_dir_of(src) if src is not None and src.exists() else None)

    def _input_detail(self):
        """The interpreter's input detail, with the sidecar's pixel map when there is one."""
        d = dict(self.interpreter.get_input_details()[0])
        if self.sidecar and self.sidecar["input"].get("scale") is not None:
            d["quantization"] = (self.sidecar["input"]["scale"], self.sidecar["input"]["zero_point"])
        return d

    def _resize_batch(self, n) -> bool:
        if n == self._batch:
            return True
        it = self.interpreter
        try:
            it.resize_tensor_input(it.get_input_details()[0]["index"], [n, self.image_size, self.image_size, 3])
            it.allocate_tensors()
        except (RuntimeError, ValueError):
            it.resize_tensor_input(it.get_input_details()[0]["index"], [1, self.image_size, self.image_size, 3])
            it.allocate_tensors()
            self._batch = 1
            return False
        self._batch = n
        return True

    def _tflite_batch(self, x):
        it = self.interpreter
        it.set_tensor(it.get_input_details()[0]["index"], _conv.quantize_input(x, self._input_detail()))
        it.invoke()
        out = it.get_output_details()[0]
        return _conv.dequantize_output(it.get_tensor(out["index"]), out)

    def predict(self, images, batch_size=DEFAULT_BATCH) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise KvasirError(f"images must be [N, {self.image_size}, {self.image_size}, 3] raw pixels, "
                              f"got {images.shape}; load them with kvasir_tf.data.pipeline.load_images")
        if len(images) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        if self.kind == "keras":
            return np.asarray(self.model.predict(images.astype(np.float32), batch_size=batch_size,
                                                 verbose=0), np.float32)
        b = max(1, min(int(batch_size), len(images)))
        if not self._resize_batch(b):
            b = 1
        outs = []
        for i in range(0, len(images), b):
            chunk = images[i:i + b]
            n = len(chunk)
            if n < b:  # pad the last batch instead of re-allocating the interpreter
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self._tflite_batch(chunk)[:n])
        return np.concatenate(outs).astype(np.float32)


def predict(model_path, images_uint8, batch_size=DEFAULT_BATCH) -> np.ndarray:
    """Probabilities [N, C] from a Keras or TFLite model for raw uint8 pixels [N, S, S, 3]."""
    return Predictor(model_path).predict(images_uint8, batch_size)


def latency(model_path, threads=1, runs=DEFAULT_LATENCY_RUNS, warmup=LATENCY_WARMUP) -> dict:
    """Host latency of one single-image invoke (ai-edge-litert, XNNPACK, num_threads) in ms."""
    p = Predictor(model_path, num_threads=threads)
    if p.kind != "tflite":
        raise KvasirError(f"latency is measured on .tflite files; convert {model_path} first")
    p._resize_batch(1)
    it = p.interpreter
    inp = it.get_input_details()[0]
    x = _conv.quantize_input(np.full((1, p.image_size, p.image_size, 3), 128, np.uint8), p._input_detail())
    it.set_tensor(inp["index"], x)
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


def _load_split(split, data_dir=None):
    from kvasir_tf.data.split import Split, load_manifest
    if isinstance(split, Split):
        return split
    return load_manifest(split, data_dir=data_dir)


def evaluate(model_path, split, subset="test", batch_size=DEFAULT_BATCH, *, out_dir=None,
             data_dir=None, predictor=None) -> dict:
    """Metrics of the artifact on ``split``'s subset (a Split, run dir or split.json)."""
    from kvasir_tf.data.pipeline import load_images
    from kvasir_tf.metrics import classification_report, format_report, save_confusion_matrix_png
    p = predictor or Predictor(model_path)
    sp = _load_split(split, data_dir)
    names = p.class_names or list(sp.class_names)
    if list(names) != list(sp.class_names):
        raise KvasirError(f"{model_path} was trained on classes {names} but the split has "
                          f"{list(sp.class_names)}; evaluate with the run's own split.json")
    if p.num_classes != len(names):
        raise KvasirError(f"{model_path} has {p.num_classes} outputs but the split has {len(names)} classes")
    paths, y_true = sp.paths(subset), sp.labels(subset)
    if len(paths) == 0:
        raise KvasirError(f"the {subset} split of {sp.root} is empty; use a larger dataset")
    probs = []
    chunk = max(batch_size, 256)  # decode in chunks so a large test set never sits in memory twice
    for i in range(0, len(paths), chunk):
        probs.append(p.predict(load_images(paths[i:i + chunk], p.image_size), batch_size))
    probs = np.concatenate(probs)
    report = classification_report(y_true, probs, names)
    report.update(model=str(model_path), kind=p.kind, subset=subset, image_size=p.image_size,
                  data_root=str(sp.root), predictions=[int(v) for v in probs.argmax(1)],
                  labels=[int(v) for v in y_true])
    if p.sidecar:
        report["tflite_mode"] = p.sidecar.get("mode")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        (out / TABLE_NAME).write_text(format_report(report) + "\n")
        save_confusion_matrix_png(report, out / CM_PNG_NAME)
        report["outputs"] = [str(out / n) for n in (REPORT_NAME, TABLE_NAME, CM_PNG_NAME)]
    return report


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
    p = Predictor(args.model)
    manifest = args.manifest or args.run or p.run_dir
    if manifest is None:
        raise KvasirError(f"cannot tell which split {args.model} belongs to; pass --run runs/NAME "
                          "or --manifest runs/NAME/split.json")
    report = evaluate(args.model, manifest, args.split, args.batch_size, out_dir=args.out,
                      data_dir=args.data_dir, predictor=p)
    from kvasir_tf.metrics import format_report
    print(f"{args.model} ({p.kind}) on {report['n']} {args.split} images")
    print(format_report(report))
    print(format_confusion(report))
    for f in report.get("outputs", []):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
