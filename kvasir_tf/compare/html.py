"""The comparison folder's ``report.html``: the question, the headline and the verdict first, then
every model's accuracy, size and latency, the confidence section, and the saliency study's tables
and figures (as :mod:`kvasir_tf.explain` returned them). Self-contained, as every report here."""
from __future__ import annotations

import html
from pathlib import Path

from kvasir_tf.compare import layout
from kvasir_tf.explain.html import figure, page, saliency_sections, table

COMPARISON_TITLE = "kvasir_tf comparison: float, PTQ int8 and QAT int8 models, their accuracy, size, speed and saliency maps"
# What the comparison ran on (its context), and the columns of its every-model table.
ABOUT = (("data", "data {}"), ("test images", "{} test images"), ("image_size", "{} px"),
         ("width multiplier", "MobileNetV2 width {}"), ("seed", "seed {}"))
EVERY_MODEL = (("accuracy", "test acc", "{:.3f}"), ("macro_sensitivity", "sensitivity", "{:.3f}"),
               ("macro_specificity", "specificity", "{:.3f}"), ("size_kb", "file KB", "{:.1f}"),
               ("latency_1t_ms", "ms, 1 thread", "{:.2f}"))


def first_screen(comparison: dict, results) -> str:
    """The question, what was compared, the short table, the verdict and the maps' pointing game."""
    from kvasir_tf.compare.report import saliency_models
    from kvasir_tf.explain import summary
    screen, ctx = comparison.get("summary") or {}, comparison.get("context") or {}
    if not screen:
        return ""
    about = ", ".join(f.format(ctx[k]) for k, f in ABOUT if ctx.get(k) is not None)
    parts = [f"<p class=question><b>The question.</b> {html.escape(screen['question'])}</p>"]
    if about:
        parts.append(f"<p class=note>{html.escape(about)}</p>")
    if screen.get("rows"):
        parts.append(table(screen["header"], screen["rows"]))
    if screen.get("verdict"):
        parts.append(f"<p class=verdict><b>Verdict.</b> {html.escape(screen['verdict'])}</p>")
    line = summary.pointing_line(results, saliency_models(comparison.get("rows") or {}))
    if line:
        parts.append(f"<p>{html.escape(line[0].upper() + line[1:])}.</p>")
    return "".join(parts)


def every_model_section(folder: Path, comparison: dict) -> str:
    """The accuracy table and plots, then the confidence section."""
    parts = []
    rows = comparison.get("rows") or {}
    if isinstance(rows, dict) and rows:
        parts.append(table(("model", *(h for _, h, _ in EVERY_MODEL)), [
            (r.get("label", n), *(f.format(r[c]) if isinstance(r.get(c), (int, float)) else "" for c, _, f in EVERY_MODEL))
            for n, r in rows.items()]))
    for png in (folder / layout.ACCURACY_VS_LATENCY, folder / layout.ACCURACY_VS_SIZE):
        if png.is_file():
            parts.append(figure(png.stem.replace("_", " "), png))
    return ("<h2>Every model: accuracy, size and latency</h2>" + "".join(parts)
            + confidence_section(folder, rows)) if parts else ""


def confidence_section(folder: Path, rows) -> str:
    """ECE / Brier / NLL before and after temperature scaling, reliability and risk-coverage plots."""
    with_conf = {n: r for n, r in (rows or {}).items() if isinstance(r, dict) and r.get("confidence")}
    if not with_conf:
        return ""
    head = ("model", "ECE", "ECE after T", "Brier", "Brier after T", "NLL", "NLL after T", "T",
            "uncertain below", "coverage")

    def fig(block, key):
        return f"{block[key]:.3f}" if block else ""
    body = []
    for n, r in with_conf.items():
        c = r["confidence"]
        raw, sc, sel = c["raw"], c.get("scaled"), c.get("selective") or {}
        thr = sel.get("threshold")
        body.append((r.get("label", n), fig(raw, "ece"), fig(sc, "ece"), fig(raw, "brier"), fig(sc, "brier"),
                     fig(raw, "nll"), fig(sc, "nll"), f"{c['temperature']:.2f}" if sc else "",
                     "" if not sel else ("none" if thr is None else f"{thr:.3f}"),
                     f"{sel['coverage']:.3f}" if sel else ""))
    any_row = next(iter(with_conf.values()))["confidence"]
    parts = [f"<h2>Confidence</h2><p class=note>{any_row['bins']} {any_row['binning']} bins; T and the "
             f"threshold fitted on validation (intervals in {layout.MARKDOWN}).</p>", table(head, body)]
    pngs = [folder / layout.RISK_COVERAGE, folder / layout.RELIABILITY_OVERLAY, *layout.reliability_pngs(folder)]
    parts += [figure(p.stem.replace("_", " "), p) for p in pngs if p.is_file()]
    return "".join(parts)


def write_report(folder, results, figures: dict) -> Path:
    """``folder``'s report.html from its comparison.json and the saliency study's ``results`` and
    ``figures`` ({title: png path})."""
    folder = Path(folder)
    comparison = layout.read_comparison(folder)
    parts = [first_screen(comparison, results), every_model_section(folder, comparison),
             "<h2>Saliency maps</h2>", *saliency_sections(results, figures)]
    return page(COMPARISON_TITLE, parts, folder / layout.REPORT_HTML)
