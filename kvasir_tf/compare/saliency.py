"""The saliency summary that ``kvasir-compare`` and ``make demo`` print after the accuracy table.

A quick study (vanilla saliency for the Keras models, occlusion for all, a few images per class)
so the comparison gains a few minutes at most; ``kvasir-explain FOLDER`` runs the full one.
:mod:`kvasir_tf.explain` returns the study's results and figures; the comparison folder's
``report.html`` is assembled from them here (:mod:`kvasir_tf.compare.html`).
"""
from __future__ import annotations

from pathlib import Path

from kvasir_tf.errors import KvasirError

QUICK_METHODS = ("saliency", "occlusion")
QUICK_LIMIT = 5          # test images per class
QUICK_FAITHFULNESS = 3   # images per model and method with deletion/insertion curves


def quick_study(out_dir, limit: int = QUICK_LIMIT) -> dict:
    """Run the quick study on a comparison folder and write its report.html; returns explain()'s
    result (``results``, ``files`` with ``html``: the comparison's report). Raises KvasirError."""
    from kvasir_tf.compare import html
    from kvasir_tf.explain.cli import explain
    from kvasir_tf.explain.study import StudyConfig
    out_dir = Path(out_dir)
    config = StudyConfig(methods=QUICK_METHODS, limit=limit, faithfulness=QUICK_FAITHFULNESS)
    result = explain(out_dir, None, config, html=False)
    result["files"]["html"] = html.write_report(out_dir, result["results"], result["figures"])
    return result


def saliency_summary(out_dir, limit: int = QUICK_LIMIT) -> str:
    """Run the quick study on a comparison folder; returns the lines to print (an error is one line)."""
    from kvasir_tf.explain.summary import headline
    try:
        result = quick_study(out_dir, limit)
    except KvasirError as exc:
        return f"Saliency: not computed ({exc})"
    return (headline(result["results"], method="occlusion") + f"\n  full tables: {result['files']['markdown']}"
            f"\n  report: {result['files']['html']}")
