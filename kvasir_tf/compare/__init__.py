"""The comparison stage: float, PTQ and QAT models of one dataset side by side, and its report.

``layout`` spells the comparison folder's names (the only module that does); ``rows`` defines the
rows; ``runs`` trains or reuses one run per training mode; ``comparison`` converts, measures and
has the report written: ``report`` (comparison.md/.json, the first screen, plots, paired tests,
seeds), ``alpha_section`` (PACT), ``confidence_section`` (calibration); ``saliency`` runs the
quick saliency study (:mod:`kvasir_tf.explain` returns its results) and ``html`` assembles
``report.html``; ``cli`` is ``kvasir-compare``.
"""
from kvasir_tf.compare.comparison import (ComparisonPlan, convert_variants, measure, merge_device_logs,
                                          run_comparison, select_variants)
from kvasir_tf.compare.runs import run_configs, train_runs


def main(argv=None, prog="kvasir-compare") -> int:
    """``kvasir-compare`` (the console script's entry point)."""
    from kvasir_tf.compare.cli import main as cli_main
    return cli_main(argv, prog=prog)


__all__ = ["ComparisonPlan", "convert_variants", "main", "measure", "merge_device_logs", "run_comparison",
           "run_configs", "select_variants", "train_runs"]
