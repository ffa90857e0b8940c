"""Time one training step: plain float, SGT float, QAT, PACT-QAT and SGT-PACT-QAT, each SGT
mode also with the saliency L1 term (lambda2 > 0: double backprop) and with stale saliency.

Each configuration runs in its own subprocess, so its peak memory (peak GPU memory from
TensorFlow on a GPU, else the process's peak RSS) is its own. The step is Keras' compiled
train function on a fixed batch, timed (median) after warm-up. With ``--paired`` one process
per size (and code tree) builds every configuration and runs their steps in turn, one step
each per round; the ``paired`` column is the median over rounds of each configuration's step
time over the plain QAT step's of the same round (then the median over processes): on a
machine whose speed drifts from process to process and minute to minute (seen here: the same
code's per-process medians 0.08-0.15 s on idle cores), it is the steadier ratio. Its peak RSS
is the process's after that configuration's warm-up, so it includes what the configurations
built before it hold; the baseline is built first. With the parts ``pact-qat-forward`` and
``pact-qat-input-grad`` (and ``pact-qat``, ``sgt-pact-qat``), the table ends with what the SGT
step's passes cost: two plain PACT-QAT steps and one input backward, against its ratio. Ratios are to the plain QAT step
at the same size and code (goals: SGT-PACT-QAT <= 2.3x at 96 px width 0.35, <= 2.0x at 224 px
width 1.0) and, for a ``-l2`` row, to the same mode with lambda2 = 0 (the cost of the L1 term).

``--baseline-tree DIR`` (a checkout of an older commit, e.g. ``git archive COMMIT | tar -x -C
DIR``) times every configuration with that tree's ``kvasir_tf`` too, interleaved with this
tree's run by run (``--repeats``), so before and after share the machine and its load; the table
gives both, each as the median over repeats of per-process medians, and the load average. Beside
wall time it gives the process's CPU time per step, which other processes on a loaded machine
disturb far less (a ratio of CPU times compares work, not waiting for a core).

    python tools/benchmark_train.py                    # 96 and 224 px, alpha 1.0, batch 32
    python tools/benchmark_train.py --sizes 96 --steps 3 --alpha 0.35
    python tools/benchmark_train.py --configs qat sgt-pact-qat --size-alpha 96:0.35 224:1.0 \
        --baseline-tree /tmp/old --repeats 3 --paired
    python tools/benchmark_train.py --configs qat pact-qat pact-qat-forward pact-qat-input-grad \
        sgt-pact-qat --size-alpha 96:0.35 224:1.0 --paired
    python tools/benchmark_train.py --configs qat sgt-pact-qat --size-alpha 224:1.0 --paired \
        --one-pass-fake-quant-grad   # bound: what a fused fake-quant gradient kernel could give
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from kvasir_tf.errors import KvasirError, cli

# name -> (activation, QAT scheme or None, SGT wrapper?, lambda2, saliency_every)
CONFIGS = {
    "float": ("relu6", None, False, 0.0, 1),
    "sgt-float": ("relu6", None, True, 0.0, 1),
    "sgt-float-l2": ("relu6", None, True, 1e-3, 1),
    "qat": ("relu6", "default", False, 0.0, 1),
    "pact-qat": ("pact", "pact", False, 0.0, 1),
    "sgt-pact-qat": ("pact", "pact", True, 0.0, 1),
    "sgt-pact-qat-l2": ("pact", "pact", True, 10.0, 1),
    "sgt-pact-qat-every4": ("pact", "pact", True, 0.0, 4),   # stale saliency, K = 4
}
# Parts of a step, on the PACT-QAT model, for what the SGT step's passes cost: a clean and a
# masked forward + backward (two plain PACT-QAT steps) and one input backward (the saliency:
# the input-gradient part minus its forward). It counts the optimizer and the metrics twice, so
# a step without overhead comes out a little under it.
PARTS = {"pact-qat-forward": "forward", "pact-qat-input-grad": "input-grad"}
L2_SUFFIX = "-l2"  # a row with lambda2 > 0; its lambda2 = 0 twin is the name without it
BASELINE = "qat"
TREES = ("before", "after")  # --baseline-tree's kvasir_tf, this tree's
NUM_CLASSES = 8


def build_step(name, size, alpha, batch):
    """One configuration's compiled train function and an endless fixed batch."""
    import numpy as np
    import tensorflow as tf
    from kvasir_tf.model import build_mobilenetv2
    from kvasir_tf.qat import apply_qat
    from kvasir_tf.saliency_training import SaliencyGuidedModel

    if name in PARTS:
        return _build_part(PARTS[name], size, alpha, batch)
    activation, scheme, guided, lambda2, every = CONFIGS[name]
    model = build_mobilenetv2(size, NUM_CLASSES, alpha=alpha, activation=activation, seed=0)
    if scheme:
        model = apply_qat(model, scheme)
    # The wrapper train uses, guided or not: its steps choose the fake-quant gradient.
    model = SaliencyGuidedModel(model, guided=guided, lambda2=lambda2, saliency_every=every)
    model.compile(tf.keras.optimizers.Adam(1e-4),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, batch).astype("int32")
    return model.make_train_function(), iter(tf.data.Dataset.from_tensors((x, y)).repeat())


def _build_part(part, size, alpha, batch):
    """A training-mode forward ("forward") or forward + input gradient ("input-grad") of the
    PACT-QAT model, as a function of the batch iterator like Keras' train function."""
    import numpy as np
    import tensorflow as tf
    from kvasir_tf import qat
    from kvasir_tf.model import build_mobilenetv2

    model = qat.apply_qat(build_mobilenetv2(size, NUM_CLASSES, alpha=alpha, activation="pact", seed=0),
                          "pact")
    loss = tf.keras.losses.SparseCategoricalCrossentropy()
    scope = qat.twice_differentiable  # as every SaliencyGuidedModel step

    @tf.function
    def step(iterator):
        x, y = next(iterator)
        with scope():
            if part == "forward":
                return {"loss": loss(y, model(x, training=True))}
            with tf.GradientTape() as tape:
                tape.watch(x)
                ce = loss(y, model(x, training=True))
            return {"loss": tf.reduce_sum(tf.abs(tape.gradient(ce, x)))}

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, batch).astype("int32")
    return step, iter(tf.data.Dataset.from_tensors((x, y)).repeat())


def pass_estimates(rows):
    """Per size and code, what the SGT step's passes cost, from the parts' paired ratios to qat:
    2 x pact-qat + (pact-qat-input-grad - pact-qat-forward), beside sgt-pact-qat's ratio."""
    by = {(r["config"], r["size"], r["alpha"], r["tree"]): r.get("paired_ratio_to_qat") for r in rows}
    out = []
    for (name, size, alpha, tree), sgt in by.items():
        parts = [by.get((n, size, alpha, tree)) for n in ("pact-qat", *PARTS)]
        if name != "sgt-pact-qat" or sgt is None or None in parts:
            continue
        plain, forward, input_grad = parts
        passes = 2 * plain + input_grad - forward
        out.append({"size": size, "alpha": alpha, "tree": tree, "passes_x_qat": round(passes, 3),
                    "sgt_pact_qat_x_qat": sgt, "of_passes": round(sgt / passes, 3)})
    return out


def one_pass_fake_quant_gradient():
    """A cost bound, not training: every activation fake quant's gradient (``FakeQuantWithMinMaxVars``,
    PACT's and TF-MOT's; weights' per-channel ones stay) becomes one elementwise pass
    (``Relu6Grad``: wrong values, no range sums), what a fused kernel for ``dy * inside`` and the
    range sums could cost at best, in place of TensorFlow's gradient op. Both
    paths are patched: TensorFlow's gradient op, which :mod:`kvasir_tf.fake_quant` calls as its
    first derivative, and the op's registered gradient, through the forward."""
    import tensorflow as tf
    forward = tf.quantization.fake_quant_with_min_max_vars

    def gradient(dy, x, lo, hi, num_bits=8, narrow_range=False, name=None):
        return tf.raw_ops.Relu6Grad(gradients=dy, features=x), tf.zeros_like(lo), tf.zeros_like(hi)

    def fake_quant(inputs, min, max, num_bits=8, narrow_range=False, name=None):  # noqa: A002
        @tf.custom_gradient
        def fq(x, lo, hi):
            return (forward(x, lo, hi, num_bits=num_bits, narrow_range=narrow_range),
                    lambda dy: gradient(dy, x, lo, hi))
        return fq(inputs, min, max)

    tf.quantization.fake_quant_with_min_max_vars = fake_quant
    tf.quantization.fake_quant_with_min_max_vars_gradient = gradient


def _peak_mib():
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        tf.config.experimental.reset_memory_stats("GPU:0")
        return round(peak, 1), "gpu_peak_mib"
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "rss_peak_mib"  # KiB


def run_worker(names, size, alpha, batch, steps, warmup, one_pass=False):
    """Build each configuration, warm it up, then time their train steps interleaved step by
    step (round r runs one step of each), so every configuration sees the same moments of the
    machine's load; returns one result dict per configuration."""
    import tensorflow as tf

    if one_pass:
        one_pass_fake_quant_gradient()

    built, out = [], {}
    for name in names:
        step, data = build_step(name, size, alpha, batch)
        t0 = time.perf_counter()
        for _ in range(warmup):
            float(step(data)["loss"])  # waits for the device
        peak, kind = _peak_mib()
        out[name] = {"config": name, "size": size, "alpha": alpha, "batch": batch, "steps": steps,
                     "warmup_s": time.perf_counter() - t0, "peak_mib": peak, "memory": kind,
                     "configs_in_process": list(names), "one_pass_fake_quant_grad": one_pass}
        built.append((name, step, data))
    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for _ in range(steps):
        for name, step, data in built:
            t0, c0 = time.perf_counter(), time.process_time()
            float(step(data)["loss"])
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    for name, step, _ in built:
        r = out[name]
        r.update(median_s=statistics.median(times[name]), min_s=min(times[name]),
                 cpu_median_s=statistics.median(cpu[name]),
                 traces=int(step.experimental_get_tracing_count()), load1=os.getloadavg()[0],
                 device="GPU" if gpu else "CPU")
        if BASELINE in times and name != BASELINE:  # per round: same moment, same load
            r["paired_ratio"] = statistics.median(
                t / b for t, b in zip(times[name], times[BASELINE]))
            r["paired_cpu_ratio"] = statistics.median(
                t / b for t, b in zip(cpu[name], cpu[BASELINE]))
    return list(out.values())


def run_config(names, size, alpha, args, tree="after"):
    """One worker process for ``names`` (one configuration, or all with --paired)."""
    root = ROOT if tree == "after" else args.baseline_tree.resolve()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *names, "--sizes", str(size),
           "--alpha", str(alpha), "--batch", str(args.batch), "--steps", str(args.steps),
           "--warmup", str(args.warmup)] + (["--one-pass-fake-quant-grad"] if args.one_pass_fake_quant_grad else [])
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [{"config": name, "size": size, "alpha": alpha, "tree": tree, "error": tail}
                for name in names]
    return [dict(r, tree=tree) for r in json.loads(lines[-1])]


def summarize(results):
    """One row per (config, size, alpha, tree): medians over repeats, ratios within the tree."""
    groups = {}
    for r in results:
        groups.setdefault((r["config"], r["size"], r["alpha"], r["tree"]), []).append(r)
    rows = []
    for (name, size, alpha, tree), runs in groups.items():
        ok = [r for r in runs if "median_s" in r]
        if not ok:
            rows.append({"config": name, "size": size, "alpha": alpha, "tree": tree,
                         "error": runs[0]["error"]})
            continue
        rows.append({"config": name, "size": size, "alpha": alpha, "tree": tree, "n": len(ok),
                     "step_s": statistics.median(r["median_s"] for r in ok),
                     "cpu_s": statistics.median(r["cpu_median_s"] for r in ok),
                     "runs_s": [round(r["median_s"], 4) for r in ok],
                     "peak_mib": max(r["peak_mib"] for r in ok), "traces": ok[0]["traces"],
                     "load1": [round(r["load1"], 2) for r in ok]})
        paired = [r["paired_ratio"] for r in ok if "paired_ratio" in r]
        if paired:  # median over processes of each process's median per-round ratio
            rows[-1]["paired_ratio_to_qat"] = round(statistics.median(paired), 3)
            rows[-1]["paired_cpu_ratio_to_qat"] = round(
                statistics.median(r["paired_cpu_ratio"] for r in ok), 3)
            rows[-1]["paired_runs"] = [round(p, 3) for p in paired]
    times = {(r["config"], r["size"], r["alpha"], r["tree"]): r["step_s"] for r in rows if "step_s" in r}
    cpu = {(r["config"], r["size"], r["alpha"], r["tree"]): r["cpu_s"] for r in rows if "step_s" in r}
    nan = float("nan")
    for r in rows:
        if "step_s" not in r:
            continue
        key = (r["size"], r["alpha"], r["tree"])
        r["ratio_to_qat"] = round(r["step_s"] / times.get((BASELINE, *key), nan), 3)
        r["cpu_ratio_to_qat"] = round(r["cpu_s"] / cpu.get((BASELINE, *key), nan), 3)
        if r["config"].endswith(L2_SUFFIX):
            r["ratio_to_lambda2_0"] = round(
                r["step_s"] / times.get((r["config"][:-len(L2_SUFFIX)], *key), nan), 3)
    return rows


def format_table(rows):
    out = [f"{'config':<20} {'size':>4} {'width':>5} {'code':<6} {'n':>2} {'step s':>7} {'x qat':>6} "
           f"{'cpu s':>7} {'x qat':>6} {'paired':>6} {'x l2=0':>7} {'peak MiB':>9}  load1 min-max"]
    for r in rows:
        head = f"{r['config']:<20} {r['size']:>4} {r['alpha']:>5.2f} {r['tree']:<6}"
        if "error" in r:
            out.append(f"{head}  error: {r['error']}")
            continue
        l2 = r.get("ratio_to_lambda2_0")
        l2_text = f"{l2:>7.2f}" if l2 is not None else f"{'':>7}"
        paired = r.get("paired_ratio_to_qat")
        paired_text = f"{paired:>6.2f}" if paired is not None else f"{'':>6}"
        out.append(f"{head} {r['n']:>2} {r['step_s']:>7.3f} {r['ratio_to_qat']:>6.2f} "
                   f"{r['cpu_s']:>7.3f} {r['cpu_ratio_to_qat']:>6.2f} {paired_text} {l2_text} "
                   f"{r['peak_mib']:>9.0f}  {min(r['load1']):.1f}-{max(r['load1']):.1f}")
    return "\n".join(out)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    p.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width multiplier")
    p.add_argument("--size-alpha", nargs="+", metavar="SIZE:WIDTH",
                   help="(size, width) pairs instead of --sizes x --alpha, e.g. 96:0.35 224:1.0")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps (median) per configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=[*CONFIGS, *PARTS],
                   help="also pact-qat-forward and pact-qat-input-grad: with pact-qat, qat, "
                        "sgt-pact-qat and --paired, the table ends with what the SGT step's passes cost")
    p.add_argument("--repeats", type=int, default=1, help="processes per configuration (median)")
    p.add_argument("--paired", action="store_true",
                   help="one process per size and code runs every configuration, step by step in "
                        "turn: ratios to qat per round, robust to a machine whose load drifts")
    p.add_argument("--baseline-tree", type=Path,
                   help="also time every configuration with this checkout's kvasir_tf, interleaved")
    p.add_argument("--one-pass-fake-quant-grad", action="store_true",
                   help="a cost bound, not training: every activation fake quant's gradient is one "
                        "elementwise pass, what a fused kernel could cost at best (gradient values are wrong)")
    p.add_argument("--out", type=Path, default=ROOT / "bench_results" / "train_step.json")
    p.add_argument("--worker", nargs="+", choices=[*CONFIGS, *PARTS], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.batch < 1 or args.repeats < 1:
        raise KvasirError("--steps, --warmup, --batch and --repeats must be >= 1")
    if args.baseline_tree and not (args.baseline_tree / "kvasir_tf").is_dir():
        raise KvasirError(f"--baseline-tree {args.baseline_tree}: no kvasir_tf/ there; make one with "
                          f"git archive COMMIT | tar -x -C DIR")
    try:
        args.points = ([(int(a), float(b)) for a, b in (p.split(":") for p in args.size_alpha)]
                       if args.size_alpha else [(size, args.alpha) for size in args.sizes])
    except ValueError:
        raise KvasirError(f"--size-alpha {args.size_alpha}: use SIZE:WIDTH, e.g. 96:0.35") from None
    return args


@cli
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.sizes[0], args.alpha, args.batch,
                                    args.steps, args.warmup, args.one_pass_fake_quant_grad)))
        return 0
    trees = TREES if args.baseline_tree else TREES[1:]
    results = []
    # the baseline first: a process's peak RSS after a configuration includes what earlier ones hold
    names = sorted(args.configs, key=lambda n: n != BASELINE)
    groups = [names] if args.paired else [[name] for name in names]
    for _ in range(args.repeats):   # interleaved: the load drifts over all trees alike
        for size, alpha in args.points:
            for group in groups:
                for tree in trees:
                    # stale saliency is new: an older tree has no saliency_every
                    todo = [n for n in group if tree == "after" or n in PARTS or CONFIGS[n][4] == 1]
                    for r in run_config(todo, size, alpha, args, tree) if todo else []:
                        print(json.dumps(r), file=sys.stderr, flush=True)
                        results.append(r)
    rows = summarize(results)
    table = format_table(rows)
    for f in pass_estimates(rows):
        table += (f"\n{f['size']} px width {f['alpha']:.2f} {f['tree']}: the SGT step's passes (2 PACT-QAT "
                  f"steps + one input backward) = {f['passes_x_qat']:.2f}x qat; sgt-pact-qat "
                  f"{f['sgt_pact_qat_x_qat']:.2f}x = {100 * f['of_passes']:.0f} % of it")
    if args.one_pass_fake_quant_grad:
        table += "\nevery activation fake quant's gradient was one elementwise pass (a cost bound; wrong values)"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "pass_estimates": pass_estimates(rows), "results": results, "table": table}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
