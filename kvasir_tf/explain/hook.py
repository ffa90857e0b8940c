"""The saliency summary that ``kvasir-compare`` and ``make demo`` print after the accuracy table.

A quick study (vanilla saliency for the Keras models, occlusion for all, a few images per class)
so the comparison gains a few minutes at most; ``kvasir-explain FOLDER`` runs the full one. The
comparison folder's ``report.html`` (accuracy table, plots, saliency tables and grids) is written here.
"""
from __future__ import annotations

from pathlib import Path

from kvasir_tf.errors import KvasirError

QUICK_METHODS = ("saliency", "occlusion")
QUICK_LIMIT = 5          # test images per class
QUICK_FAITHFULNESS = 3   # images per model and method with deletion/insertion curves


def quick_study(out_dir, limit: int = QUICK_LIMIT) -> dict:
    """Run the quick study on a comparison folder and write its report.html; returns explain()'s
    result (``results``, ``files``). Raises KvasirError."""
    from kvasir_tf.explain.cli import DEFAULT_OUT, explain
    from kvasir_tf.explain.html import REPORT_NAME
    from kvasir_tf.explain.study import StudyConfig
    out_dir = Path(out_dir)
    config = StudyConfig(methods=QUICK_METHODS, limit=limit, faithfulness=QUICK_FAITHFULNESS)
    return explain(out_dir, out_dir / DEFAULT_OUT, config, html_path=out_dir / REPORT_NAME)


def saliency_summary(out_dir, limit: int = QUICK_LIMIT) -> str:
    """Run the quick study on a comparison folder; returns the lines to print (an error is one line)."""
    from kvasir_tf.explain.summary import headline
    try:
        result = quick_study(out_dir, limit)
    except KvasirError as exc:
        return f"Saliency: not computed ({exc})"
    return (headline(result["results"], method="occlusion") + f"\n  full tables: {result['files']['markdown']}"
            f"\n  report: {result['files']['html']}")
