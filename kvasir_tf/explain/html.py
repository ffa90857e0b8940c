"""One self-contained ``report.html`` per comparison folder: every image inlined as a data: URI, no
script, no external file, so it opens the same from a mail attachment or a USB stick."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

REPORT_NAME = "report.html"
COMPARISON_TITLE = "kvasir_tf comparison: float, PTQ int8 and QAT int8 models, their accuracy, size, speed and saliency maps"
SALIENCY_TITLE = "kvasir_tf saliency report"
# What the comparison ran on (its context), and the columns of its every-model table.
ABOUT = (("data", "data {}"), ("test images", "{} test images"), ("image_size", "{} px"),
         ("width multiplier", "MobileNetV2 width {}"), ("seed", "seed {}"))
EVERY_MODEL = (("accuracy", "test acc", "{:.3f}"), ("macro_sensitivity", "sensitivity", "{:.3f}"),
               ("macro_specificity", "specificity", "{:.3f}"), ("size_kb", "file KB", "{:.1f}"),
               ("latency_1t_ms", "ms, 1 thread", "{:.2f}"))
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td:first-child,td:nth-child(2){text-align:left}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
.note{color:#555;font-size:13px}.question,.verdict{font-size:16px;max-width:900px}
.verdict{background:#f4f8ff;border-left:4px solid #4a7bd0;padding:.5em 1em}"""


def data_uri(png_path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png_path).read_bytes()).decode("ascii")


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(title, png) -> str:
    return (f"<figure><figcaption>{html.escape(title)}</figcaption>"
            f"<img alt=\"{html.escape(title)}\" src=\"{data_uri(png)}\"></figure>")


def _comparison(folder) -> dict:
    """kvasir-compare's comparison.json in ``folder`` ({} when there is none)."""
    doc = Path(folder) / "comparison.json" if folder is not None else None
    if doc is None or not doc.is_file():
        return {}
    try:
        out = json.loads(doc.read_text())
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _first_screen(comparison: dict, results) -> str:
    """The question, what was compared, the short table, the verdict and the maps' pointing game."""
    from kvasir_tf.explain import summary
    from kvasir_tf.report import saliency_models
    screen, ctx = comparison.get("summary") or {}, comparison.get("context") or {}
    if not screen:
        return ""
    about = ", ".join(f.format(ctx[k]) for k, f in ABOUT if ctx.get(k) is not None)
    parts = [f"<p class=question><b>The question.</b> {html.escape(screen['question'])}</p>"]
    if about:
        parts.append(f"<p class=note>{html.escape(about)}</p>")
    if screen.get("rows"):
        parts.append(_table(screen["header"], screen["rows"]))
    if screen.get("verdict"):
        parts.append(f"<p class=verdict><b>Verdict.</b> {html.escape(screen['verdict'])}</p>")
    line = summary.pointing_line(results, saliency_models(comparison.get("rows") or {}))
    if line:
        parts.append(f"<p>{html.escape(line[0].upper() + line[1:])}.</p>")
    return "".join(parts)


def _comparison_section(folder: Path, comparison: dict) -> str:
    """The accuracy table and plots of kvasir-compare, when they are in the folder."""
    parts = []
    rows = comparison.get("rows") or {}
    if isinstance(rows, dict) and rows:
        parts.append(_table(("model", *(h for _, h, _ in EVERY_MODEL)), [
            (r.get("label", n), *(f.format(r[c]) if isinstance(r.get(c), (int, float)) else "" for c, _, f in EVERY_MODEL))
            for n, r in rows.items()]))
    for png in sorted(folder.glob("accuracy_vs_*.png")):
        parts.append(_figure(png.stem.replace("_", " "), png))
    return ("<h2>Every model: accuracy, size and latency</h2>" + "".join(parts)
            + _confidence_section(folder, rows)) if parts else ""


def _confidence_section(folder: Path, rows) -> str:
    """ECE / Brier / NLL before and after temperature scaling, reliability and risk-coverage plots."""
    from kvasir_tf import confidence_report as cr
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
             "threshold fitted on validation (intervals in comparison.md).</p>", _table(head, body)]
    pngs = [folder / cr.RISK_COVERAGE_PNG, folder / cr.OVERLAY_PNG,
            *sorted(p for p in folder.glob(f"{cr.RELIABILITY_PREFIX}*.png") if p.name != cr.OVERLAY_PNG)]
    parts += [_figure(p.stem.replace("_", " "), p) for p in pngs if p.is_file()]
    return "".join(parts)


def write_report(results, figures: dict, out_path, folder=None) -> Path:
    """``figures``: {title: png path}; ``folder``: the comparison folder, whose question, headline
    and accuracy tables come first when it has a comparison.json."""
    from kvasir_tf.explain import summary
    img = results["images"]
    comparison = _comparison(folder)
    title = COMPARISON_TITLE if comparison else SALIENCY_TITLE
    about_maps = (f"<p class=note>{html.escape(str(results['folder']))}: "
                  f"{img['n']} images from {html.escape(img['source'])}, {img['with_masks']} with a lesion mask. "
                  f"{html.escape(' '.join(img.get('notes') or []))} Cells: mean [95 % bootstrap interval].</p>")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if comparison:
        parts += [_first_screen(comparison, results), _comparison_section(Path(folder), comparison),
                  "<h2>Saliency maps</h2>", about_maps]
    else:
        parts.append(about_maps)
    loc = summary.localisation_rows(results)
    if loc:
        parts.append("<h2>Localisation</h2>" + _table(
            ("model", "method", *(c for _, c in summary.LOC_COLUMNS), "n"),
            [(n, m, *(v[c] for c, _ in summary.LOC_COLUMNS), cnt) for n, m, v, cnt in loc]))
    agr = summary.agreement_rows(results)
    if agr:
        parts.append("<h2>Agreement</h2>" + _table(
            ("pair", "models", "method", *(c for _, c in summary.AGREE_COLUMNS), "n"),
            [(lab, p, m, *(v[c] for c, _ in summary.AGREE_COLUMNS), cnt) for lab, p, m, v, cnt in agr]))
    fai = summary.faithfulness_rows(results)
    if fai:
        parts.append("<h2>Faithfulness</h2>" + _table(
            ("model", "method", "deletion AUC", "random", "insertion AUC", "random", "n"),
            [(n, m, v["deletion_auc"], v["deletion_random_auc"], v["insertion_auc"], v["insertion_random_auc"], cnt)
             for n, m, v, cnt in fai]))
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(_figure(t, p) for t, p in figures.items() if p))
    doc = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    out_path = Path(out_path)
    out_path.write_text(doc, encoding="utf-8")
    return out_path
