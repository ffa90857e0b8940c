"""Where the time of one training step goes: TensorFlow's profiler over a few steps of a
:mod:`benchmark_train` configuration, its op times summed by phase of the step and by op type.

Phases come from the step's name scopes (``kvasir_tf.saliency_training``): the clean and masked
forwards, the saliency (input backward), the mask, the snapshot/restore of the non-trainable
variables, and the weight backward + optimizer (ops outside those scopes). Op time is summed over
the executor threads (with 2 cores it exceeds wall time); shares, not sums, are the result.

    python tools/profile_train_step.py sgt-pact-qat --size 96 --alpha 0.35
"""
import argparse
import collections
import glob
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_train import CONFIGS, build_step  # noqa: E402

from kvasir_tf.errors import cli  # noqa: E402

# Phases: forward ops carry the step's scopes; TensorFlow names the gradient of an op
# "gradient_tape/<its forward scope>/..." whichever tape takes it, so the clean pass's backward
# holds both the input backward (saliency) and the clean half of the weight backward; ops of
# custom gradients (fake quants, PACT) carry the scope they are built in instead.
PHASES = {"clean_pass": "forward, clean pass", "masked_pass": "forward, masked pass",
          "gradient_tape/clean_pass": "backward through the clean pass (input + weights)",
          "gradient_tape/masked_pass": "backward through the masked pass (weights)",
          "saliency": "input backward: fake-quant/PACT gradients, |.|, sum",
          "weight_backward": "weight backward: fake-quant/PACT gradients, optimizer",
          "mask": "mask (keys, selection, fill)", "snapshot": "snapshot of non-trainables",
          "restore": "restore of non-trainables"}
OTHER = "other (metrics, losses, plain-step scopes)"


def phase_of(op_name):
    parts = op_name.split("/")
    for key in (f"{parts[0]}/{parts[1]}" if len(parts) > 1 else None, parts[0]):
        if key in PHASES:
            return PHASES[key]
    return OTHER


def op_times(logdir):
    """{(phase, op type): seconds} and the op count, from the profile's host plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    plane = next(p for p in space.planes if "host:CPU" in p.name)
    times, count = collections.Counter(), 0
    for line in plane.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        for ev in line.events:
            name = plane.event_metadata[ev.metadata_id].name
            if ":" not in name or "::" in name:   # executor bookkeeping, not an op
                continue
            op, kind = name.rsplit(":", 1)
            times[(phase_of(op), kind)] += ev.duration_ps / 1e12
            count += 1
    return times, count


@cli
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", choices=list(CONFIGS))
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--alpha", type=float, default=0.35)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="profiled steps (after 3 untimed)")
    p.add_argument("--top", type=int, default=12, help="op types listed")
    args = p.parse_args(argv)
    import tensorflow as tf
    step, data = build_step(args.config, args.size, args.alpha, args.batch)
    for _ in range(3):
        float(step(data)["loss"])
    logdir = tempfile.mkdtemp(prefix="kvasir_profile_")
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        float(step(data)["loss"])
    tf.profiler.experimental.stop()
    times, count = op_times(logdir)
    total = sum(times.values())
    by_phase, by_kind = collections.Counter(), collections.Counter()
    for (phase, kind), t in times.items():
        by_phase[phase] += t
        by_kind[kind] += t
    print(f"{args.config} {args.size} px width {args.alpha}: {count / args.steps:.0f} ops/step, "
          f"op time {total / args.steps:.3f} s/step (summed over threads)")
    for name, t in by_phase.most_common():
        print(f"  {name:<40} {100 * t / total:5.1f} %")
    print("  op types:")
    for name, t in by_kind.most_common(args.top):
        print(f"  {name:<40} {100 * t / total:5.1f} %")
    print(json.dumps({"phases": {k: round(v / total, 4) for k, v in by_phase.items()},
                      "ops_per_step": count / args.steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
