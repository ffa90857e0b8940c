"""``kvasir-compare`` / ``python -m kvasir_tf.compare``: the comparison from the command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import kvasir_tf
from kvasir_tf.compare import layout, report
from kvasir_tf.compare.comparison import LATENCY_RUNS, ComparisonPlan, run_comparison, written
from kvasir_tf.compare.rows import ROWS
from kvasir_tf.compare.runs import RECIPES
from kvasir_tf.compare.saliency import saliency_summary
from kvasir_tf.config import add_train_args, base_config, given_settings
from kvasir_tf.errors import KvasirError, cli


def parser(prog="kvasir-compare") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="Compare float, SGT, PTQ int8, TF-MOT QAT int8, "
                                 "PACT-QAT int8 and SGT-PACT-QAT int8 side by side on one test split.")
    ap.add_argument("--out", default="runs/compare", help=f"output folder: {layout.RUNS}/, {layout.MODELS}/, "
                                                          "reports (default runs/compare)")
    add_train_args(ap, run_flags=False)
    ap.add_argument("--qat-epochs", type=int, help="epochs of the QAT fine-tuning runs (default --epochs)")
    ap.add_argument("--qat-lr", type=float, help="learning rate of the QAT fine-tuning runs (default --lr)")
    ap.add_argument("--recipe", choices=RECIPES, default="finetune",
                    help="finetune: QAT runs start from the float/SGT run, with equal-budget control "
                         "rows; scratch: every row in one stage from random initialisation, as the "
                         "paper's Algorithm 2 (default finetune)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="repeat with N split and training seeds (--seed .. --seed+N-1) and report "
                         "mean and standard deviation per row; N times the training (default 1)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="train up to N runs at once, each in its own process with its output in "
                         f"OUT/{layout.LOGS}/RUN.log; 2 on a 2-core CPU nearly halves the training time, keep 1 "
                         "on one GPU (default 1)")
    ap.add_argument("--models", help="comma-separated rows to produce (default all): "
                    + ", ".join(r.name for r in ROWS))
    ap.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    ap.add_argument("--force", action="store_true", help="convert again even where a .tflite exists")
    ap.add_argument("--num-calibration", type=int, help="PTQ calibration images (default: the converter's)")
    ap.add_argument("--latency-runs", type=int, default=LATENCY_RUNS,
                    help=f"timed invokes per model and thread count (default {LATENCY_RUNS})")
    ap.add_argument("--device-log", action="append", default=[], metavar="ROW=LOG",
                    help="on-device figures for a row: firmware serial capture or benchmark_model output")
    kvasir_tf.add_verbose_flag(ap)
    return ap


def qat_overrides(epochs=None, lr=None) -> dict:
    return {k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None}


@cli
def main(argv=None, prog="kvasir-compare") -> int:
    args = parser(prog).parse_args(argv)
    if args.jobs < 1:
        raise KvasirError(f"--jobs {args.jobs}: use at least 1")
    if args.latency_runs < 50:
        raise KvasirError(f"--latency-runs {args.latency_runs}: use at least 50 for a stable median/p90")
    given = given_settings(args)
    if not given.get("demo") and not given.get("data_dir"):
        raise KvasirError("pass --data-dir DIR (Kvasir v2 or any class-per-folder dataset) or --demo")
    logs = {}
    for item in args.device_log:
        row, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise KvasirError(f"--device-log {item!r}: use ROW=PATH with an existing log file")
        logs[row] = path
    result = run_comparison(args.out, base_config(given), ComparisonPlan(
        qat=qat_overrides(args.qat_epochs, args.qat_lr),
        variants=tuple(args.models.split(",")) if args.models else None, recipe=args.recipe,
        seeds=args.seeds, retrain=args.retrain, force_convert=args.force,
        num_calibration=args.num_calibration, latency_runs=args.latency_runs, device_logs=logs,
        jobs=args.jobs))
    print("\n".join(report.screen_lines(report.read_screen(result["files"]["json"]))))
    for f in written(result["files"]):
        print(f"wrote {f}")
    print(saliency_summary(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
