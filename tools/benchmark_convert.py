"""MobileNetV2-1.0-224: TFLite size and host latency per conversion mode (a benchmark, not a timed test).

Converts a random-init ``build_mobilenetv2(224, 8)`` (size and latency do not depend on the
weights' values) to float32, fp16, dynamic, int8 per-channel and int8 per-tensor, calibrating on
real Kvasir-SEG images; latency rounds interleave the models so load drift hits all alike. It
also counts the per-channel quantization parameters in the flatbuffer (the size difference
between per-channel and per-tensor files) and, as a proxy for per-tensor's accuracy cost, the
top-1 agreement of each int8 model with float32 after re-estimating BatchNorm statistics.
Targets: int8 <= 0.27x float32 in size, <= 0.6x in latency at 1 thread. Prints a table and
PASS/MISS lines, writes bench_results/convert.json.

    .venv/bin/python tools/benchmark_convert.py [--threads 1 2] [--runs 50] [--rounds 5]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import numpy as np

from kvasir_tf.errors import KvasirError, cli

SEG_IMAGES = REPO.parent / "shared" / "data" / "kvasir-seg" / "images"
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
SEED = 0
SIZE_TARGET = 0.27          # int8 / float32 file size
SIZE_HOSTED = 0.243         # TFLite hosted mobilenet_v2_1.0_224_quant vs float
LATENCY_TARGET = 0.6        # int8 / float32 latency, 1 thread
LATENCY_ANCHOR = 0.69       # Pixel 3
BASE = "float32"
# name -> (convert mode, per_tensor)
MODELS = {
    "float32": ("float", False),
    "fp16": ("fp16", False),
    "dynamic": ("dynamic", False),
    "int8": ("int8", False),
    "int8-per-tensor": ("int8", True),
}
INT8 = ("int8", "int8-per-tensor")


# ----------------------------------------------------------------------------- images

def load_images(size, n_cal, n_agree, images_dir):
    """(calibration uint8 [n_cal,S,S,3], disjoint agreement set [<=n_agree,S,S,3], source note)."""
    from kvasir_tf.data.pipeline import load_images as load
    rng = np.random.default_rng(SEED)
    files = (sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
             if images_dir.is_dir() else [])
    if len(files) > n_cal:
        order = rng.permutation(len(files))
        cal = [files[i] for i in order[:n_cal]]
        agree = [files[i] for i in order[n_cal:n_cal + n_agree]]
        return load(cal, size), load(agree, size), f"{len(files)} real images in {images_dir}"
    from kvasir_tf.data.classes import KVASIR_V2_CLASSES
    from kvasir_tf.data.synthetic_render import render
    print(f"note: {images_dir} has {len(files)} images (need > {n_cal}); calibrating on the "
          "synthetic demo generator (kvasir_tf.data.synthetic) instead", file=sys.stderr)
    imgs = np.stack([render(KVASIR_V2_CLASSES[i % len(KVASIR_V2_CLASSES)], size, rng)[0]
                     for i in range(n_cal + n_agree)])
    return imgs[:n_cal], imgs[n_cal:], "synthetic demo images (kvasir_tf.data.synthetic)"


# ----------------------------------------------------------------------------- flatbuffer

def quant_params(path) -> dict:
    """Quantization parameters stored in the flatbuffer, counted from the interpreter's tensors.

    Each stored scale is a float32 (4 B) and each zero point an int64 (8 B) in the schema.
    ``per_channel_extra_bytes`` is what per-channel costs over one scale/zero point per tensor.
    """
    from kvasir_tf.runtime import make_interpreter
    it = make_interpreter(model_path=path, delegates=False)
    tensors = pc = channels = scales = zps = 0
    for t in it.get_tensor_details():
        q = t.get("quantization_parameters") or {}
        s, z = len(q.get("scales", ())), len(q.get("zero_points", ()))
        scales += s
        zps += z
        if s > 1:
            pc += 1
            channels += s
        tensors += 1
    return {"tensors": tensors, "per_channel_tensors": pc, "per_channel_entries": channels,
            "scales": scales, "zero_points": zps, "param_bytes": scales * 4 + zps * 8,
            "per_channel_extra_bytes": (channels - pc) * 12}


# ----------------------------------------------------------------------------- measurements

def reestimate_batchnorm(model, images):
    """Set every BatchNorm's moving mean/variance to the statistics of ``images[:64]`` (one pass)."""
    import tensorflow as tf
    bns = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(images[:64].astype(np.float32), training=True)  # one batch: its statistics win
    for layer, m in zip(bns, saved):
        layer.momentum = m


def convert_all(model, tmp, cal, names):
    from kvasir_tf.convert import convert
    out = {}
    for name in names:
        mode, per_tensor = MODELS[name]
        t0 = time.perf_counter()
        r = convert(model, tmp / f"model_{name}.tflite", mode,
                    representative=cal if mode == "int8" else None,
                    num_calibration=len(cal) if mode == "int8" else None,
                    per_tensor=per_tensor, verbose=False)
        out[name] = {"path": r.tflite_path, "size_bytes": r.size_bytes,
                     "convert_s": round(time.perf_counter() - t0, 1)}
        print(f"converted {name:<16} {r.size_bytes / 2**20:6.2f} MiB in {out[name]['convert_s']:.0f} s",
              file=sys.stderr, flush=True)
    return out


def time_all(paths, threads, runs, rounds):
    """Per (model, threads): each round's latency() result; rounds interleave all models."""
    from kvasir_tf.evaluate import latency
    per = {(n, t): [] for n in paths for t in threads}
    for r in range(rounds):
        for t in threads:
            for name, path in paths.items():
                per[(name, t)].append(latency(path, threads=t, runs=runs))
        print(f"latency round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return per


def agreement(paths, images):
    from kvasir_tf.evaluate import predict
    probs = {n: predict(p, images) for n, p in paths.items()}
    top = {n: p.argmax(1) for n, p in probs.items()}
    base = top[BASE]
    srt = np.sort(probs[BASE], axis=1)
    return {"images": int(len(images)),
            "float32_distinct_top1": int(len(np.unique(base))),
            "float32_median_top1_margin": float(np.median(srt[:, -1] - srt[:, -2])),
            "models": {n: {"top1_agreement": float((top[n] == base).mean()),
                           "mean_abs_prob_diff": float(np.abs(probs[n] - probs[BASE]).mean())}
                       for n in paths if n != BASE}}


# ----------------------------------------------------------------------------- report

def verdict(value, target):
    return "PASS" if value <= target else "MISS"


def format_report(res) -> str:
    rows = res["rows"]
    threads = res["threads"]
    lines = [f"MobileNetV2-{res['alpha']}-{res['size']} ({res['classes']} classes), "
             f"ai-edge-litert {res['litert']} (XNNPACK), {res['cpu_count']} CPUs, "
             f"{res['runs']} runs x {res['rounds']} interleaved rounds",
             f"{'model':<16} {'size KiB':>9} {'x f32':>6} "
             + " ".join(f"{f'{t}T med ms':>10} {f'{t}T p90':>7} {'x f32':>6}" for t in threads)]
    for name, r in rows.items():
        cells = [f"{name:<16} {r['size_bytes'] / 1024:>9.1f} {r['size_ratio']:>6.3f}"]
        for t in threads:
            lt = r["latency"][str(t)]
            cells.append(f"{lt['median_ms']:>10.2f} {lt['p90_ms']:>7.2f} {lt['ratio']:>6.3f}")
        lines.append(" ".join(cells))
    qp = res["quant_params"]
    pc, pt = qp["int8"], qp["int8-per-tensor"]
    diff = rows["int8"]["size_bytes"] - rows["int8-per-tensor"]["size_bytes"]
    lines.append(f"quantization params in the flatbuffer: per-channel {pc['per_channel_tensors']} tensors "
                 f"with {pc['per_channel_entries']} channel entries, {pc['param_bytes'] / 1024:.1f} KiB "
                 f"(per-tensor model {pt['param_bytes'] / 1024:.1f} KiB); per-channel overhead "
                 f"{pc['per_channel_extra_bytes']} B counted, file sizes differ by {diff} B")
    ag = res["agreement"]
    lines.append(f"top-1 agreement with float32 on {ag['images']} calibration-disjoint {ag['source']} "
                 f"images (untrained net with re-estimated BatchNorm, a proxy only; float32 predicts "
                 f"{ag['float32_distinct_top1']} distinct classes, median top-1 - top-2 probability "
                 f"margin {ag['float32_median_top1_margin']:.4f}): " + ", ".join(
                     f"{n} {ag['models'][n]['top1_agreement']:.3f} "
                     f"(mean |dp| {ag['models'][n]['mean_abs_prob_diff']:.4f})" for n in INT8))
    for name in INT8:
        s = rows[name]["size_ratio"]
        lines.append(f"{verdict(s, SIZE_TARGET)} size    {name:<16} {s:.3f}x float32 "
                     f"(target <= {SIZE_TARGET}, TFLite hosted per-tensor {SIZE_HOSTED})")
    for name in INT8:
        for t in threads:
            lr = rows[name]["latency"][str(t)]["ratio"]
            scope = "" if t == 1 else " (target is defined at 1 thread)"
            lines.append(f"{verdict(lr, LATENCY_TARGET)} latency {name:<16} {lr:.3f}x float32 at {t} "
                         f"thread(s), round ratios {lines_ratios(rows[name]['latency'][str(t)])} "
                         f"(target <= {LATENCY_TARGET}, Pixel 3 {LATENCY_ANCHOR}){scope}")
    return "\n".join(lines)


def lines_ratios(lt):
    return "/".join(f"{x:.2f}" for x in lt["round_ratios"])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width multiplier")
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--runs", type=int, default=100, help="timed invokes per model per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median of round medians)")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="interpreter threads, e.g. 1 2")
    p.add_argument("--calibration", type=int, default=32, help="calibration images")
    p.add_argument("--agreement", type=int, default=64,
                   help="calibration-disjoint images for the int8 vs float32 top-1 agreement")
    p.add_argument("--images", type=Path, default=SEG_IMAGES, help="real images (Kvasir-SEG images/)")
    p.add_argument("--out-json", type=Path, default=REPO / "bench_results" / "convert.json")
    args = p.parse_args(argv)
    if min(args.runs, args.rounds, args.calibration, args.agreement, *args.threads) < 1:
        raise KvasirError("--runs, --rounds, --threads, --calibration and --agreement must be >= 1")
    args.threads = list(dict.fromkeys(args.threads))
    return args


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    from importlib.metadata import version
    from kvasir_tf.model import build_mobilenetv2
    t_start = time.perf_counter()
    cal, agree_imgs, source = load_images(args.size, args.calibration, args.agreement, args.images)
    model = build_mobilenetv2(args.size, args.classes, alpha=args.alpha, seed=SEED)
    reestimate_batchnorm(model, cal)
    with tempfile.TemporaryDirectory() as tmp:
        conv = convert_all(model, Path(tmp), cal, list(MODELS))
        paths = {n: c["path"] for n, c in conv.items()}
        qp = {n: quant_params(paths[n]) for n in INT8}
        ag = agreement(paths, agree_imgs)
        ag["source"] = "synthetic" if source.startswith("synthetic") else "real"
        per = time_all(paths, args.threads, args.runs, args.rounds)
    rows = {}
    for name, c in conv.items():
        row = {"size_bytes": c["size_bytes"], "size_ratio": c["size_bytes"] / conv[BASE]["size_bytes"],
               "convert_s": c["convert_s"], "latency": {}}
        for t in args.threads:
            rs, base = per[(name, t)], per[(BASE, t)]
            med = statistics.median(r["median_ms"] for r in rs)
            row["latency"][str(t)] = {
                "median_ms": med, "p90_ms": statistics.median(r["p90_ms"] for r in rs),
                "round_medians_ms": [r["median_ms"] for r in rs],
                "round_ratios": [a["median_ms"] / b["median_ms"] for a, b in zip(rs, base)],
                "ratio": med / statistics.median(r["median_ms"] for r in base)}
        rows[name] = row
    res = {"size": args.size, "alpha": args.alpha, "classes": args.classes, "runs": args.runs,
           "rounds": args.rounds, "threads": args.threads, "calibration_images": int(len(cal)),
           "calibration_source": source, "cpu_count": os.cpu_count(), "machine": platform.machine(),
           "tensorflow": version("tensorflow"), "litert": version("ai-edge-litert"),
           "runtime": "ai-edge-litert (XNNPACK)",
           "targets": {"size_ratio": SIZE_TARGET, "size_hosted": SIZE_HOSTED,
                       "latency_ratio_1_thread": LATENCY_TARGET, "latency_pixel3": LATENCY_ANCHOR},
           "rows": rows, "quant_params": qp, "agreement": ag}
    res["verdicts"] = {
        "size": {n: verdict(rows[n]["size_ratio"], SIZE_TARGET) for n in INT8},
        "latency": {n: {str(t): verdict(rows[n]["latency"][str(t)]["ratio"], LATENCY_TARGET)
                        for t in args.threads} for n in INT8}}
    table = format_report(res)
    res["table"] = table
    res["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(table)
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out_json} ({res['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
