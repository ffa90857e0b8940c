"""The comparison's PACT section: each PACT run's clipping levels, their int8 step, what they clip.

For every PACT row of a comparison (its best Keras checkpoint): the alpha distribution at the
start of training (``alphas.csv`` row 0) and at the end, and per layer the int8 step alpha/255
that the deployed model uses, the k-bit step alpha/(2^k - 1) the Keras model trained with, and
the share of the layer's inputs at or above alpha on the test images (clipped). Written to
``alphas.json`` and appended to ``comparison.md`` as its own section.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kvasir_tf import rundir
from kvasir_tf.compare import layout
from kvasir_tf.pact import DEPLOY_BITS

SECTION_TITLE = "## PACT clipping levels (alpha)"


def _distribution(values) -> dict:
    v = np.asarray(list(values), float)
    q = np.percentile(v, [0, 25, 50, 75, 100])
    return {"min": q[0], "q1": q[1], "median": q[2], "q3": q[3], "max": q[4], "n": int(v.size)}


def run_alphas(run_dir, *, num_images=None) -> dict:
    """One PACT run: alpha distribution start/end and the per-layer table (test images)."""
    from kvasir_tf import alpha_init
    from kvasir_tf.callbacks import read_alpha_csv
    from kvasir_tf.data.pipeline import load_images
    from kvasir_tf.data.split import load_manifest
    from kvasir_tf.model_io import load_model
    run_dir = Path(run_dir)
    cfg = rundir.read_config(run_dir)
    bits = int(cfg.get("bits", DEPLOY_BITS))
    model = load_model(rundir.checkpoint_path(run_dir))
    end = alpha_init.alpha_values(model)
    csv = run_dir / rundir.ALPHAS_CSV
    history = read_alpha_csv(csv) if csv.is_file() else {}
    start = history[min(history)] if history else {}
    split = load_manifest(run_dir, data_dir=cfg.get("data_dir"))
    paths = split.paths("test")[:num_images] if num_images else split.paths("test")
    images = load_images(paths, int(cfg["image_size"]), mask_overlays=bool(cfg.get("mask_overlays")))
    clipped = alpha_init.clipped_share(model, images)
    layers = [{"layer": n, "alpha_start": start.get(n), "alpha": a,
               "int8_step": a / (2 ** DEPLOY_BITS - 1), "kbit_step": a / (2 ** bits - 1),
               "clipped": clipped[n]} for n, a in end.items()]
    return {"run": str(run_dir), "mode": cfg.get("mode"), "bits": bits, "test_images": len(images),
            "alpha_init_percentile": cfg.get("alpha_init_percentile"),
            "alpha_lr": cfg.get("alpha_lr") or cfg.get("alpha_lr_ratio", 1.0) * cfg["lr"],
            "start": _distribution(start.values()) if start else None, "end": _distribution(end.values()),
            "clipped_median": float(np.median(list(clipped.values()))), "layers": layers}


def _fmt_dist(d) -> str:
    if not d:
        return "n/a (no alphas.csv)"
    return f"{d['min']:.2f} / {d['q1']:.2f} / {d['median']:.2f} / {d['q3']:.2f} / {d['max']:.2f}"


def markdown(summaries: dict) -> str:
    """The section: one distribution line per run, then a per-layer table per run."""
    out = [SECTION_TITLE, "",
           "Alpha is each PACT layer's learned clip level; the int8 model quantizes the layer's "
           f"output over [0, alpha] with step alpha/{2 ** DEPLOY_BITS - 1} whatever --bits was "
           "(a k < 8 model trained on the coarser step alpha/(2^k - 1)). Clipped: share of the "
           "layer's inputs >= alpha on the test images.", "",
           "| run | bits | alpha at start: min / q1 / median / q3 / max | at the end | median clipped |",
           "|---|---:|---|---|---:|"]
    for name, s in summaries.items():
        out.append(f"| {name} | {s['bits']} | {_fmt_dist(s['start'])} | {_fmt_dist(s['end'])} | "
                   f"{100 * s['clipped_median']:.2f} % |")
    for name, s in summaries.items():
        out += ["", f"### {name}: per layer", "",
                f"| layer | alpha start | alpha end | int8 step | {s['bits']}-bit step | clipped |",
                "|---|---:|---:|---:|---:|---:|"]
        for r in s["layers"]:
            a0 = "" if r["alpha_start"] is None else f"{r['alpha_start']:.3f}"
            out.append(f"| {r['layer']} | {a0} | {r['alpha']:.3f} | {r['int8_step']:.4f} | "
                       f"{r['kbit_step']:.4f} | {100 * r['clipped']:.2f} % |")
    return "\n".join(out) + "\n"


def pact_runs(rows: dict) -> dict:
    """{row name: run dir} of the Keras rows of PACT modes in a comparison's rows."""
    out = {}
    for name, row in rows.items():
        if row.get("format") == "keras" and "pact" in str(row.get("train_mode", "")):
            run = rundir.run_dir_of(row["path"])
            if run is not None:
                out[name] = run
    return out


def write_alpha_report(out_dir, rows: dict, markdown_path=None) -> Path | None:
    """alphas.json in ``out_dir`` and the section appended to ``markdown_path``; None without PACT rows."""
    runs = pact_runs(rows)
    if not runs:
        return None
    summaries = {name: run_alphas(run) for name, run in runs.items()}
    path = Path(out_dir) / layout.ALPHAS_JSON
    rundir.write_json_atomic(path, summaries)
    if markdown_path is not None and Path(markdown_path).is_file():
        text = Path(markdown_path).read_text()
        cut = text.find(SECTION_TITLE)
        text = (text[:cut] if cut >= 0 else text).rstrip("\n") + "\n\n" + markdown(summaries)
        Path(markdown_path).write_text(text)
    return path
