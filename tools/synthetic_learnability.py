"""Does the demo data teach the demo's models? `make demo`'s comparison over several seeds.

    python tools/synthetic_learnability.py [--seeds 3] [--out runs/demo]

Runs the demo's comparison (same data, rows, epochs and learning rates; `--out runs/demo` reuses
a finished `make demo` as seed 0) with seeds 0..N-1, each its own split and training, and prints
every row's test accuracy per seed with mean and sd, then the demo's goals: the float model and
the paper's int8 model at >= 0.80 on average, and no row at 1.0 on every seed (a row that is
always perfect leaves quantization and guidance nothing to differ on). Re-run it after changing
the renderer (``kvasir_tf/data/synthetic_render.py``) or the demo's settings (``kvasir_tf/demo.py``).
"""
import argparse
import sys

from kvasir_tf import compare, demo
from kvasir_tf.compare import report
from kvasir_tf.compare import rows as R
from kvasir_tf.config import DEMO_DATA_DIR
from kvasir_tf.errors import cli

GOAL = 0.80
GOAL_ROWS = (R.FLOAT_KERAS, R.SGT_PACT_QAT_INT8)


def goals(repeats: list) -> list:
    """[(what, met)] for the demo's two goals, from one rows dict per seed."""
    summary = report.seed_summary(repeats)
    out = []
    for row in GOAL_ROWS:
        s = summary[row.name]["accuracy"]
        per_seed = ", ".join(f"{r[row.name]['accuracy']:.3f} [{r[row.name]['ci']['accuracy'][0]:.3f}, "
                             f"{r[row.name]['ci']['accuracy'][1]:.3f}]" for r in repeats)
        out.append((f"{row.label}: mean {s['mean']:.3f} (sd {s['std'] or 0:.3f}) >= {GOAL}; per seed, "
                    f"95 % Wilson: {per_seed}", s["mean"] >= GOAL))
    perfect = [summary[n]["label"] for n in summary if all(v == 1.0 for v in summary[n]["accuracy"]["values"])]
    out.append((f"no row at 1.0 on every seed ({', '.join(perfect) or 'none is'})", not perfect))
    return out


@cli
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--out", default="runs/learnability", help="comparison folder (runs/demo reuses make demo)")
    args = ap.parse_args(argv)
    print(f"demo data: {demo.prepare_data(DEMO_DATA_DIR)} in {DEMO_DATA_DIR}", flush=True)
    result = compare.run_comparison(args.out, demo.base_settings(), qat=demo.DEMO_QAT,
                                    variants=demo.demo_models(), jobs=demo.DEMO_JOBS, seeds=args.seeds)
    repeats = result["repeats"]
    print(report.seed_table(report.seed_summary(repeats)))
    checks = goals(repeats)
    for what, met in checks:
        print(f"{'met' if met else 'NOT MET'}: {what}")
    return 0 if all(met for _, met in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
