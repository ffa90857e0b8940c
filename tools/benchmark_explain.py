#!/usr/bin/env python
"""Saliency maps per second for each method, and the batched int8 occlusion/RISE map against one
invoke per mask (a benchmark, not a timed test; goal: batched >= 3x faster).

Models: MobileNetV2-1.0-224 and the 96 px width-0.35 model, random weights with batch-norm
statistics from one batch (speed does not depend on the values), Keras and int8 (calibrated on
real Kvasir-SEG images when ../shared/data is there, random pixels otherwise). Prints a table,
writes bench_results/explain.json.

    .venv/bin/python tools/benchmark_explain.py [--maps 2] [--threads 2] [--rise-masks 500]
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kvasir_tf.errors import cli

REPO = Path(__file__).resolve().parents[1]

SEG_IMAGES = REPO.parent / "shared" / "data" / "kvasir-seg" / "images"
CONFIGS = (("mobilenetv2-1.0-224", 224, 1.0), ("mobilenetv2-0.35-96", 96, 0.35))
GOAL = 3.0


def images(size, n, seed=0):
    from kvasir_tf.data.pipeline import load_images
    files = sorted(SEG_IMAGES.glob("*.jpg")) if SEG_IMAGES.is_dir() else []
    if len(files) >= n:
        pick = np.random.default_rng(seed).choice(len(files), n, replace=False)
        return load_images([files[i] for i in pick], size), "Kvasir-SEG"
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8), "random"


def build(size, alpha, calib):
    import tensorflow as tf
    from kvasir_tf.model import build_mobilenetv2
    model = build_mobilenetv2(size, 2, alpha=alpha, seed=0)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(calib.astype(np.float32), training=True)      # moving statistics <- one batch
    return model


def to_int8(model, calib, out_dir):
    from kvasir_tf.convert import convert
    out = Path(out_dir) / f"{model.name}_int8.tflite"
    convert(model, out, "int8", representative=calib, class_names=["a", "b"], allow_fewer=True,
            verbose=False, force=True)
    return out


def rate(explainer, imgs):
    explainer(imgs[:1])                                   # warm-up: tracing, allocation
    t = time.perf_counter()
    explainer(imgs)
    return len(imgs) / (time.perf_counter() - t)


def bench_config(name, size, alpha, args, tmp):
    from kvasir_tf.explain import gradients, perturbation
    from kvasir_tf.runtime import TFLiteModel
    calib, source = images(size, 32)
    imgs = calib[: args.maps]
    model = build(size, alpha, calib)
    int8 = TFLiteModel(to_int8(model, calib, tmp), num_threads=args.threads)
    rows = []
    for method, cls in gradients.EXPLAINERS.items():
        rows.append({"model": name, "runtime": "keras", "method": method, "maps_per_s": rate(cls(model), imgs)})
    for method in ("occlusion", "rise"):
        kw = {"n_masks": args.rise_masks} if method == "rise" else {}
        cls = perturbation.EXPLAINERS[method]
        rows.append({"model": name, "runtime": "keras", "method": method,
                     "maps_per_s": rate(cls(model, args.batch, **kw), imgs)})
        predictor = perturbation.TFLitePredictor(int8, args.batch)
        batched = rate(cls(predictor, **kw), imgs)
        single = rate(cls(perturbation.TFLitePredictor(int8, 1), **kw), imgs[:1])
        rows.append({"model": name, "runtime": f"int8 batch {predictor.batch_size}", "method": method,
                     "maps_per_s": batched,
                     "speedup_vs_one_invoke": batched / single})
        rows.append({"model": name, "runtime": "int8 one invoke per mask", "method": method, "maps_per_s": single})
    return rows, source


@cli
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--maps", type=int, default=2, help="timed maps per method (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="interpreter threads (default 2)")
    ap.add_argument("--batch", type=int, help="interpreter batch (default: the explainers' own, "
                                              "kvasir_tf.explain.perturbation.batch_for)")
    ap.add_argument("--rise-masks", type=int, default=500)
    ap.add_argument("--only", choices=[c[0] for c in CONFIGS], help="one model only")
    ap.add_argument("--out-json", type=Path, default=REPO / "bench_results" / "explain.json")
    args = ap.parse_args(argv)
    rows, sources, t0 = [], {}, time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, size, alpha in CONFIGS:
            if args.only in (None, name):
                r, sources[name] = bench_config(name, size, alpha, args, tmp)
                rows += r
    print(f"{'model':22s} {'runtime':26s} {'method':22s} {'maps/s':>8s} {'batched/one':>12s}")
    for r in rows:
        sp = f"{r['speedup_vs_one_invoke']:.1f}x" if "speedup_vs_one_invoke" in r else ""
        print(f"{r['model']:22s} {r['runtime']:26s} {r['method']:22s} {r['maps_per_s']:8.3f} {sp:>12s}")
    speedups = [r["speedup_vs_one_invoke"] for r in rows if "speedup_vs_one_invoke" in r]
    verdict = "PASS" if speedups and min(speedups) >= GOAL else "MISS"
    print(f"{verdict}: batched int8 occlusion/RISE {min(speedups):.1f}x-{max(speedups):.1f}x one invoke per mask "
          f"(goal >= {GOAL:g}x)")
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps({"rows": rows, "images": sources, "threads": args.threads,
                                         "batch": args.batch, "rise_masks": args.rise_masks,
                                         "cpus": os.cpu_count(), "machine": platform.machine(),
                                         "wall_s": time.time() - t0}, indent=2) + "\n")
    print(f"wrote {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
