#!/usr/bin/env python3
"""Micro-model variants: params, MACs, flash, arena and accuracy (Keras float vs int8 in TFLM's
reference kernels; training resize INTER_AREA vs the device's integer path), as a table.

    tools/benchmark_micro.py RUN_DIR:EXPORT_DIR [RUN_DIR:EXPORT_DIR ...]

EXPORT_DIR is what ``python -m kvasir_tf.micro RUN_DIR --out EXPORT_DIR`` wrote. Device paths:
``device box`` is :mod:`kvasir_tf.device_preprocessing` on the full decoded image (crop + integer
box filter), ``device QCIF`` first makes the 176x144 RGB565 frame an OV7675 would give.
Prints a markdown table and writes bench_results/micro.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import kvasir_tf  # noqa: F401  (Keras 2 before TensorFlow, which the functions below import)

REPO = Path(__file__).resolve().parents[1]


def macs(model) -> int:
    """Multiply-accumulates of the conv, depthwise and dense layers (QAT wrappers unwrapped)."""
    import tensorflow as tf
    total = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        out = layer.output_shape
        if isinstance(inner, tf.keras.layers.DepthwiseConv2D):
            kh, kw = inner.kernel_size
            total += out[1] * out[2] * kh * kw * out[3]
        elif isinstance(inner, tf.keras.layers.Conv2D):
            kh, kw = inner.kernel_size
            total += out[1] * out[2] * kh * kw * layer.input_shape[-1] * out[3]
        elif isinstance(inner, tf.keras.layers.Dense):
            total += layer.input_shape[-1] * out[-1]
    return int(total)


def device_images(paths, size):
    from kvasir_tf import device_preprocessing as dp
    from kvasir_tf import golden
    from kvasir_tf.data.imageio import read_rgb
    box, qcif = [], []
    for p in paths:
        rgb = read_rgb(p)
        box.append(dp.frame_to_pixels(rgb, "rgb888", size))
        frame = golden.camera_frames(rgb, 144, 176)["rgb565"]
        qcif.append(dp.frame_to_pixels(frame, "rgb565", size))
    return np.asarray(box), np.asarray(qcif)


def measure(run_dir: Path, export_dir: Path) -> dict:
    from kvasir_tf.data.pipeline import load_images
    from kvasir_tf.micro import tflm
    from kvasir_tf.rundir import load_run
    model, config, split = load_run(run_dir)
    side = json.loads((export_dir / "model_micro.json").read_text())
    size = int(side["image_size"])
    paths, y = split.paths("test"), split.labels("test")
    area = load_images(paths, size)
    box, qcif = device_images(paths, size)
    content = (export_dir / "model_micro.tflite").read_bytes()

    def int8_acc(images):
        q = (images.astype(np.int16) - 128).astype(np.int8)     # the sidecar's map, scale 1, zp -128
        return float((tflm.run_reference(content, q).argmax(1) == y).mean())

    keras = float((model.predict(area.astype(np.float32), verbose=0).argmax(1) == y).mean())
    micro = side["micro"]
    pt = micro["fold"].get("per_tensor")
    return {"run": str(run_dir), "export": str(export_dir), "test_images": int(len(y)),
            "last_conv_channels": config.get("last_conv_channels"), "early_expansion": config.get("early_expansion"),
            "params": int(model.count_params()), "macs": macs(model), "model_bytes": side["size_bytes"],
            "arena_min_bytes": micro["arena"]["minimum_bytes"], "arena_bytes": micro["arena"]["arena_bytes"],
            "weights": f"per-tensor ({pt['mode']})" if pt else "per-channel",
            "keras_acc": keras, "int8_acc": int8_acc(area), "int8_device_box_acc": int8_acc(box),
            "int8_device_qcif_acc": int8_acc(qcif),
            "per_channel_int8_acc": pt["per_channel_accuracy"] if pt else None}


def table(rows) -> str:
    head = ("| run | weights | params | MACs | flash (model) | arena (min) | Keras float | int8 | "
            "int8 device box | int8 device QCIF |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(f"| {Path(r['run']).name} | {r['weights']} | {r['params']:,} | {r['macs'] / 1e6:.1f} M | "
                     f"{r['model_bytes'] / 1024:.0f} KiB | {r['arena_min_bytes'] / 1024:.1f} KiB | "
                     f"{r['keras_acc']:.3f} | {r['int8_acc']:.3f} | {r['int8_device_box_acc']:.3f} | "
                     f"{r['int8_device_qcif_acc']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+", help="RUN_DIR:EXPORT_DIR")
    p.add_argument("--out-json", type=Path, default=REPO / "bench_results" / "micro.json")
    args = p.parse_args(argv)
    rows = []
    for pair in args.pairs:
        run, _, export = pair.partition(":")
        rows.append(measure(Path(run), Path(export)))
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
