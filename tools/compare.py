#!/usr/bin/env python3
"""Compare float, SGT, PTQ int8, TF-MOT QAT int8, PACT-QAT int8 and SGT-PACT-QAT int8 side by side.

    tools/compare.py --demo | --data-dir DIR  [--out runs/compare] [--image-size S] [--alpha A]
                     [--epochs N] [--qat-epochs N] [--qat-lr LR] [--batch-size B] [--seed K]
                     [--lr LR] [--bn-momentum M]
                     [--recipe finetune|scratch] [--models a,b,...] [--retrain] [--force]
                     [--latency-runs N] [--device-log ROW=LOG ...]

Trains only the runs that are missing (reuses finished ones), converts, evaluates every artifact
on the same test split and writes comparison.md, comparison.json and two PNG plots to --out.
--device-log merges on-device latency: a firmware serial capture or `benchmark_model` output.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kvasir_tf  # noqa: E402,F401  (Keras 2 before TensorFlow)
from kvasir_tf import compare  # noqa: E402
from kvasir_tf.errors import KvasirError, cli  # noqa: E402


def _parser():
    ap = argparse.ArgumentParser(prog="tools/compare.py", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo", action="store_true", help="use the embedded demo data (small defaults)")
    src.add_argument("--data-dir", help="Kvasir v2 or any class-per-folder dataset")
    ap.add_argument("--out", default="runs/compare", help="output folder (runs/, models/, reports)")
    for flag, typ in (("--image-size", int), ("--alpha", float), ("--epochs", int),
                      ("--batch-size", int), ("--seed", int), ("--lr", float), ("--bn-momentum", float)):
        ap.add_argument(flag, type=typ, help="passed to every training run")
    ap.add_argument("--qat-epochs", type=int, help="epochs of the QAT fine-tuning runs (default --epochs)")
    ap.add_argument("--qat-lr", type=float, help="learning rate of the QAT fine-tuning runs (default --lr)")
    ap.add_argument("--recipe", choices=compare.RECIPES, default="finetune",
                    help="finetune: QAT runs start from the float/SGT run; scratch: all from scratch")
    ap.add_argument("--models", help="comma-separated rows to produce (default all): "
                    + ", ".join(v.name for v in compare.VARIANTS))
    ap.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    ap.add_argument("--force", action="store_true", help="convert again even where a .tflite exists")
    ap.add_argument("--num-calibration", type=int, help="PTQ calibration images (default: the converter's)")
    ap.add_argument("--latency-runs", type=int, default=compare.LATENCY_RUNS,
                    help="timed invokes per model and thread count")
    ap.add_argument("--device-log", action="append", default=[], metavar="ROW=LOG",
                    help="on-device figures for a row: firmware serial capture or benchmark_model output")
    return ap


@cli
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.latency_runs < 50:
        raise KvasirError(f"--latency-runs {args.latency_runs}: use at least 50 for a stable median/p90")
    data_args = ["--demo"] if args.demo else ["--data-dir", args.data_dir]
    train_args = []
    for name in ("image_size", "alpha", "epochs", "batch_size", "seed", "lr", "bn_momentum"):
        value = getattr(args, name)
        if value is not None:
            train_args += [f"--{name.replace('_', '-')}", str(value)]
    qat_args = (["--epochs", str(args.qat_epochs)] if args.qat_epochs else []) + \
        (["--lr", str(args.qat_lr)] if args.qat_lr else [])
    logs = {}
    for item in args.device_log:
        row, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise KvasirError(f"--device-log {item!r}: use ROW=PATH with an existing log file")
        logs[row] = path
    result = compare.run_comparison(
        args.out, data_args=data_args, train_args=train_args, qat_train_args=qat_args,
        variants=args.models.split(",") if args.models else None, recipe=args.recipe,
        retrain=args.retrain, force_convert=args.force, num_calibration=args.num_calibration,
        latency_runs=args.latency_runs, device_logs=logs, data_dir=args.data_dir)
    print(result["files"]["markdown"].read_text())
    for f in [result["files"]["markdown"], result["files"]["json"], *result["files"]["plots"]]:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
