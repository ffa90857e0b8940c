"""A self-contained saliency ``report.html``: every image inlined as a data: URI, no script, no
external file, so it opens the same from a mail attachment or a USB stick. Its pieces (style,
tables, figures, the saliency sections) also make up a comparison's report
(:mod:`kvasir_tf.compare.html`)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

REPORT_NAME = "report.html"
SALIENCY_TITLE = "kvasir_tf saliency report"
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td:first-child,td:nth-child(2){text-align:left}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
.note{color:#555;font-size:13px}.question,.verdict{font-size:16px;max-width:900px}
.verdict{background:#f4f8ff;border-left:4px solid #4a7bd0;padding:.5em 1em}"""


def data_uri(png_path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png_path).read_bytes()).decode("ascii")


def table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(title, png) -> str:
    return (f"<figure><figcaption>{html.escape(title)}</figcaption>"
            f"<img alt=\"{html.escape(title)}\" src=\"{data_uri(png)}\"></figure>")


def page(title: str, parts, out_path) -> Path:
    """Write one HTML page of ``parts`` (HTML strings) under ``title``."""
    doc = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>\n")
    out_path = Path(out_path)
    out_path.write_text(doc, encoding="utf-8")
    return out_path


def saliency_sections(results, figures: dict) -> list:
    """What the study found: the images it used, then localisation, agreement, faithfulness and
    the figures (``figures``: {title: png path})."""
    from kvasir_tf.explain import summary
    img = results["images"]
    parts = [f"<p class=note>{html.escape(str(results['folder']))}: "
             f"{img['n']} images from {html.escape(img['source'])}, {img['with_masks']} with a lesion mask. "
             f"{html.escape(' '.join(img.get('notes') or []))} Cells: mean [95 % bootstrap interval].</p>"]
    loc = summary.localisation_rows(results)
    if loc:
        parts.append("<h2>Localisation</h2>" + table(
            ("model", "method", *(c for _, c in summary.LOC_COLUMNS), "n"),
            [(n, m, *(v[c] for c, _ in summary.LOC_COLUMNS), cnt) for n, m, v, cnt in loc]))
    agr = summary.agreement_rows(results)
    if agr:
        parts.append("<h2>Agreement</h2>" + table(
            ("pair", "models", "method", *(c for _, c in summary.AGREE_COLUMNS), "n"),
            [(lab, p, m, *(v[c] for c, _ in summary.AGREE_COLUMNS), cnt) for lab, p, m, v, cnt in agr]))
    fai = summary.faithfulness_rows(results)
    if fai:
        parts.append("<h2>Faithfulness</h2>" + table(
            ("model", "method", "deletion AUC", "random", "insertion AUC", "random", "n"),
            [(n, m, v["deletion_auc"], v["deletion_random_auc"], v["insertion_auc"], v["insertion_random_auc"], cnt)
             for n, m, v, cnt in fai]))
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(figure(t, p) for t, p in figures.items() if p))
    return parts


def write_report(results, figures: dict, out_path) -> Path:
    """The saliency study's own report (``kvasir-explain``)."""
    return page(SALIENCY_TITLE, saliency_sections(results, figures), out_path)
