"""`make demo`: the whole pipeline on the embedded demo data, ending with a report.

    python -m kvasir_tf.demo [--out runs/demo] [--quick]

1. generate the demo dataset (8 Kvasir v2 classes, procedural) and print its summary;
2. train float, SGT, TF-MOT QAT, PACT-QAT and SGT-PACT-QAT (QAT runs fine-tune the float/SGT runs,
   and the float/SGT controls train as many extra epochs);
3. convert each to the artifacts a user deploys (float32, fp16, dynamic range, int8) and verify them;
4. evaluate every artifact on the same test split, time it, and write the comparison report.
Everything finished is reused on a second run.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import kvasir_tf
from kvasir_tf import rows
from kvasir_tf.errors import cli

# Sized for the 10-minute goal on 2 CPU cores: seven runs (five modes and the two equal-budget
# controls) train here, so each trains fewer epochs than `python -m kvasir_tf.train --demo`.
DEMO_EPOCHS = 15
# QAT runs fine-tune a trained float/SGT model: fewer epochs, a smaller step.
DEMO_QAT = {"epochs": 6, "lr": 1e-3}
# Every row but the float16, dynamic-range and SGT float32 files: each conversion costs ~12 s here.
DEMO_SKIPPED = tuple(r.name for r in (rows.FLOAT_FP16, rows.FLOAT_DYNAMIC, rows.SGT))
# Runs trained at once (each a process using about one core at these sizes).
DEMO_JOBS = min(2, os.cpu_count() or 1)
# Saliency summary: test images per class (8 classes, every model, two methods).
DEMO_SALIENCY_LIMIT = 2
# --quick: the paper's model only (SGT, then SGT-PACT-QAT fine-tuning).
QUICK_MODELS = tuple(r.name for r in (rows.SGT_KERAS, rows.SGT_PACT_QAT_KERAS, rows.SGT_PACT_QAT_INT8))


def demo_models() -> list:
    from kvasir_tf.compare import select_variants
    return [v.name for v in select_variants() if v.name not in DEMO_SKIPPED]


def prepare_data(data_dir) -> Path:
    """Generate (or reuse) the demo data and print what a user would get from `kvasir-data summary`."""
    from kvasir_tf.data.cli import format_summary
    from kvasir_tf.data.discovery import discover
    from kvasir_tf.data.synthetic import ensure_demo_data
    root = ensure_demo_data(data_dir)
    print(format_summary(discover(root)))
    return root


def run_demo(out_dir="runs/demo", quick=False) -> dict:
    from kvasir_tf import compare
    from kvasir_tf.config import DEMO_DATA_DIR, base_config
    data_dir = DEMO_DATA_DIR  # where `python -m kvasir_tf.train --demo` looks
    print(f"== 1/3 demo data in {data_dir}")
    prepare_data(data_dir)
    print(f"== 2/3 train, convert and evaluate (runs and models under {out_dir})")
    result = compare.run_comparison(out_dir, base_config({"demo": True, "epochs": DEMO_EPOCHS}), qat=DEMO_QAT,
                                    variants=QUICK_MODELS if quick else demo_models(), jobs=DEMO_JOBS)
    print("== 3/3 report")
    print(result["files"]["markdown"].read_text())
    for f in compare.written(result["files"]):
        print(f"wrote {f}")
    from kvasir_tf.explain.hook import saliency_summary
    print(saliency_summary(out_dir, limit=DEMO_SALIENCY_LIMIT))
    return result


@cli
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kvasir_tf.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/demo", help="where runs, models and the report go")
    ap.add_argument("--quick", action="store_true", help="only the paper's model (SGT -> SGT-PACT-QAT int8)")
    kvasir_tf.add_verbose_flag(ap)
    args = ap.parse_args(argv)
    run_demo(args.out, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
