"""``saliency.md`` and ``saliency.json``: the study's figures as tables, means with 95 % intervals."""
from __future__ import annotations

import json
import math
from pathlib import Path

from kvasir_tf.explain.metrics import format_ci

MARKDOWN_NAME, JSON_NAME = "saliency.md", "saliency.json"
LOC_COLUMNS = (("pointing", "pointing game"), ("energy_in_mask", "energy in mask"),
               ("mask_top_k_iou", "top-k IoU with mask"), ("mask_fraction", "mask area (chance)"))
AGREE_COLUMNS = (("spearman", "Spearman"), ("ssim", "SSIM"), ("top_k_iou", "top-k IoU"))


def _clean(obj):
    """JSON without NaN (null instead), so browsers and jq read it."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def localisation_rows(results) -> list:
    """[(model, method, {column: 'mean [lo, hi]'}, n)]."""
    rows = []
    for name, per_method in results["localisation"].items():
        for method, s in per_method.items():
            rows.append((name, method, {k: format_ci(s[k]) for k, _ in LOC_COLUMNS}, s["pointing"]["n"]))
    return rows


def agreement_rows(results) -> list:
    rows = []
    for pair, per_method in results["agreement"].items():
        for method, s in per_method.items():
            if method != "label":
                rows.append((per_method["label"], pair, method, {k: format_ci(s[k]) for k, _ in AGREE_COLUMNS},
                             s["spearman"]["n"]))
    return rows


def faithfulness_rows(results) -> list:
    rows = []
    for name, per_method in results["faithfulness"].items():
        for method, s in per_method.items():
            rows.append((name, method, {k: format_ci(v) for k, v in s.items()}, s["deletion_auc"]["n"]))
    return rows


def _table(header, rows) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(results) -> str:
    cfg, img = results["config"], results["images"]
    k = cfg["top_k"]
    out = ["# Saliency maps", "",
           f"Images: {img['n']} from {img['source']} ({img['with_masks']} with a lesion mask). "
           + " ".join(img.get("notes") or []),
           f"Maps explain the {'true' if cfg['target'] == 'label' else 'predicted'} class; "
           f"methods {', '.join(cfg['methods'])}; top-k = {k:g} %. Each cell: mean [95 % bootstrap interval].",
           ""]
    acc = [(n, m["kind"], "n/a" if m["accuracy"] is None else f"{m['accuracy']:.3f}") for n, m in results["models"].items()]
    out += ["## Models", "", *_table(("model", "kind", "accuracy on these images"), acc), ""]
    loc = localisation_rows(results)
    if loc:
        out += ["## Localisation (images with a mask)", "",
                "Pointing game: the map's maximum lies in the mask. Energy in mask: share of the map's "
                "total inside the mask; a uniform map scores the mask's area (last column).", "",
                *_table(("model", "method", *(c for _, c in LOC_COLUMNS), "n"),
                        [(n, m, *(v[c] for c, _ in LOC_COLUMNS), str(cnt)) for n, m, v, cnt in loc]), ""]
    agr = agreement_rows(results)
    if agr:
        out += ["## Agreement between models (same image, same method)", "",
                *_table(("pair", "models", "method", *(c for _, c in AGREE_COLUMNS), "n"),
                        [(lab, p, m, *(v[c] for c, _ in AGREE_COLUMNS), str(cnt)) for lab, p, m, v, cnt in agr]), ""]
    fai = faithfulness_rows(results)
    if fai:
        out += ["## Faithfulness (deletion: lower is better; insertion: higher is better; vs random order)", "",
                *_table(("model", "method", "deletion AUC", "random", "insertion AUC", "random", "n"),
                        [(n, m, v["deletion_auc"], v["deletion_random_auc"], v["insertion_auc"],
                          v["insertion_random_auc"], str(cnt)) for n, m, v, cnt in fai]), ""]
    return "\n".join(out)


def headline(results, method=None) -> str:
    """A few lines for the end of kvasir-compare / make demo."""
    lines = ["Saliency (mean [95 % CI]):"]
    loc = results["localisation"]
    for name, per_method in loc.items():
        m = method if method in per_method else next(iter(per_method))
        s = per_method[m]
        lines.append(f"  {name:22s} {m:10s} pointing {format_ci(s['pointing'])}  "
                     f"energy in mask {format_ci(s['energy_in_mask'])} (chance {format_ci(s['mask_fraction'])})")
    for pair, per_method in results["agreement"].items():
        m = method if method in per_method else next(k for k in per_method if k != "label")
        lines.append(f"  {per_method['label']:32s} {m:10s} Spearman {format_ci(per_method[m]['spearman'])}")
    return "\n".join(lines)


def pointing_line(results, labels: dict, method="occlusion") -> str | None:
    """One line: the pointing game of the models ``labels`` names ({model: label}) against the
    lesion masks, beside what a random peak scores (the masks' mean area)."""
    loc = results["localisation"]
    found = [(label, loc[n][method]) for n, label in labels.items() if method in loc.get(n, {})]
    if not found:
        return None
    s0 = found[0][1]
    return (f"saliency ({method} maps of test images with a lesion mask): the map's peak lies on the lesion "
            "for " + ", ".join(f"{label} {format_ci(s['pointing'])} ({s['pointing']['n']} images)"
                               for label, s in found)
            + f"; a random peak: {format_ci(s0['mask_fraction'])} (the masks' area)")


def write(results, out_dir) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / MARKDOWN_NAME, out_dir / JSON_NAME
    md.write_text(markdown(results) + "\n")
    js.write_text(json.dumps(_clean(results), indent=1) + "\n")
    return {"markdown": md, "json": js}
