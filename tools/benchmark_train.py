"""Time one training step: plain float, SGT float, QAT, PACT-QAT and SGT-PACT-QAT, each SGT
mode also with the saliency L1 term (lambda2 > 0: double backprop).

Each configuration runs in its own subprocess, so its peak memory (peak GPU memory from
TensorFlow on a GPU, else the process's peak RSS) is its own. The step is Keras' compiled
train function on a fixed batch, timed (median) after warm-up. Ratios are to the plain QAT step
at the same size (the goal is SGT-PACT-QAT <= 2.5x, operation-count floor ~2.3x) and, for a
``-l2`` row, to the same mode with lambda2 = 0 (the cost of the L1 term).

    python tools/benchmark_train.py                    # 96 and 224 px, alpha 1.0, batch 32
    python tools/benchmark_train.py --sizes 96 --steps 3 --alpha 0.35
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from kvasir_tf.errors import KvasirError, cli

# name -> (activation, QAT scheme or None, SGT wrapper?, lambda2)
CONFIGS = {
    "float": ("relu6", None, False, 0.0),
    "sgt-float": ("relu6", None, True, 0.0),
    "sgt-float-l2": ("relu6", None, True, 1e-3),
    "qat": ("relu6", "default", False, 0.0),
    "pact-qat": ("pact", "pact", False, 0.0),
    "sgt-pact-qat": ("pact", "pact", True, 0.0),
    "sgt-pact-qat-l2": ("pact", "pact", True, 10.0),
}
L2_SUFFIX = "-l2"  # a row with lambda2 > 0; its lambda2 = 0 twin is the name without it
BASELINE = "qat"
NUM_CLASSES = 8


def run_worker(name, size, alpha, batch, steps, warmup):
    """Build one configuration, time its train step; returns a result dict."""
    import numpy as np
    import tensorflow as tf
    from kvasir_tf.model import build_mobilenetv2
    from kvasir_tf.qat import apply_qat
    from kvasir_tf.saliency_training import SaliencyGuidedModel

    activation, scheme, guided, lambda2 = CONFIGS[name]
    model = build_mobilenetv2(size, NUM_CLASSES, alpha=alpha, activation=activation, seed=0)
    if scheme:
        model = apply_qat(model, scheme)
    if guided:
        model = SaliencyGuidedModel(model, lambda2=lambda2)
    model.compile(tf.keras.optimizers.Adam(1e-4),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, batch).astype("int32")
    data = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    step = model.make_train_function()
    times = []
    t_trace = time.perf_counter()
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        logs = step(data)
        float(logs["loss"])  # waits for the device
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        if i == 0:
            t_trace = time.perf_counter() - t_trace
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        kind = "gpu_peak_mib"
    else:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        kind = "rss_peak_mib"
    return {"config": name, "size": size, "alpha": alpha, "batch": batch, "steps": steps,
            "median_s": statistics.median(times), "min_s": min(times),
            "first_call_s": t_trace, "traces": int(step.experimental_get_tracing_count()),
            "peak_mib": round(peak, 1), "memory": kind,
            "device": "GPU" if gpus else "CPU"}


def run_config(name, size, args):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--sizes", str(size),
           "--alpha", str(args.alpha), "--batch", str(args.batch), "--steps", str(args.steps),
           "--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"config": name, "size": size, "error": tail}
    return json.loads(lines[-1])


def format_table(results):
    rows = [f"{'config':<16} {'size':>4} {'step s':>8} {'x qat':>6} {'x l2=0':>7} {'peak MiB':>9}"]
    times = {(r["config"], r["size"]): r["median_s"] for r in results if "median_s" in r}
    nan = float("nan")
    for r in results:
        if "error" in r:
            rows.append(f"{r['config']:<16} {r['size']:>4}  error: {r['error']}")
            continue
        ratio = r["median_s"] / times.get((BASELINE, r["size"]), nan)
        r["ratio_to_qat"] = round(ratio, 3)
        l2_ratio = nan
        if r["config"].endswith(L2_SUFFIX):
            l2_ratio = r["median_s"] / times.get((r["config"][:-len(L2_SUFFIX)], r["size"]), nan)
            r["ratio_to_lambda2_0"] = round(l2_ratio, 3)
        l2_text = f"{l2_ratio:>7.2f}" if l2_ratio == l2_ratio else f"{'':>7}"
        rows.append(f"{r['config']:<16} {r['size']:>4} {r['median_s']:>8.3f} {ratio:>6.2f} "
                    f"{l2_text} {r['peak_mib']:>9.0f}")
    return "\n".join(rows)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    p.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width multiplier")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps (median) per configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", type=Path, default=ROOT / "bench_results" / "train_step.json")
    p.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.batch < 1:
        raise KvasirError("--steps, --warmup and --batch must be >= 1")
    return args


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.sizes[0], args.alpha, args.batch,
                                    args.steps, args.warmup)))
        return 0
    results = []
    for size in args.sizes:
        for name in args.configs:
            r = run_config(name, size, args)
            print(json.dumps(r), file=sys.stderr, flush=True)
            results.append(r)
    table = format_table(results)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "table": table}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
