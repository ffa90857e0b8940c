"""The comparison's report: Markdown tables, the paper's figures beside ours, paired tests,
repeats over seeds, JSON and the two plots.

Every accuracy, sensitivity, specificity and agreement figure is printed with its 95 % interval
when the row carries one (``row["ci"]``, filled in by :mod:`kvasir_tf.stats` via
:mod:`kvasir_tf.compare.comparison`).
"""
from __future__ import annotations

import json
from pathlib import Path

from kvasir_tf import stats
from kvasir_tf.compare import layout
from kvasir_tf.compare import rows as R

# The paper's Table I: our quantized model against the float SGT model it starts from.
TABLE1_ROWS = (R.SGT_KERAS.name, R.SGT_PACT_QAT_INT8.name)
# The paper's Table I as printed (Lavaei et al. 2025, Kvasir v2, 8 classes), as fractions.
PAPER_DATASET = "Kvasir v2, 8 classes"
PAPER_TABLE1 = (
    {"name": "paper-sgt", "label": "paper: SGT model",
     "accuracy": 0.7748, "macro_sensitivity": 0.7812, "macro_specificity": 0.7812},
    {"name": "paper-ours", "label": "paper: our model (SGT + PACT QAT)",
     "accuracy": 0.7905, "macro_sensitivity": 0.8437, "macro_specificity": 0.8437},
)
PAPER_NOTE = (
    f"The paper's rows are its Table I as printed ({PAPER_DATASET}; test size not stated), not "
    "measured here. Its sensitivity equals its specificity in both rows; one-vs-rest macro figures "
    "over 8 balanced classes are not equal (each class has 7 times more negatives than positives, so "
    "specificity is about 1 - (1 - accuracy) / 7, near 0.97 at its accuracy): its definition differs "
    "from ours (one-vs-rest, macro over the classes present). 84.37 and 78.12 are 27/32 and 25/32 "
    "to two decimals. Compare accuracy directly. (With 2 classes, as on Kvasir-SEG patches, our macro "
    "sensitivity and specificity are equal by construction: each class's sensitivity is the other's "
    "specificity.)")

# Pairs of rows tested on the same images. Reported as b - a.
PAIRS = (
    R.Pair(R.SGT_KERAS, R.SGT_PACT_QAT_INT8, "Table I: ours vs the SGT model"),
    R.Pair(R.SGT_FT_KERAS, R.SGT_PACT_QAT_INT8, "Table I at equal training budget"),
    R.Pair(R.FLOAT_KERAS, R.SGT_KERAS, "saliency-guided vs plain training"),
    R.Pair(R.FLOAT_KERAS, R.SGT_PACT_QAT_INT8, "the paper's int8 model vs the float model"),
    *(R.Pair(keras, int8, "int8 vs its Keras model") for keras, int8 in R.QAT_PAIRS),
    R.Pair(R.FLOAT_KERAS, R.PTQ_INT8, "PTQ vs the float model"),
    R.Pair(R.PTQ_INT8, R.QAT_INT8, "PTQ vs QAT"),
    R.Pair(R.PTQ_INT8, R.PACT_QAT_INT8, "PTQ vs PACT-QAT"),
    R.Pair(R.FLOAT_FT_KERAS, R.QAT_INT8, "QAT vs equal-budget float"),
    R.Pair(R.FLOAT_FT_KERAS, R.PACT_QAT_INT8, "PACT-QAT vs equal-budget float"),
)

# Per-image lists stay out of comparison.json (hundreds of numbers per row).
PER_IMAGE_KEYS = ("predictions", "labels", "probabilities", "test_groups")
METRIC_COLUMNS = (  # key, header, format; each with its 95 % interval when the row has one
    ("accuracy", "acc [95 %]", "{:.3f}"),
    ("macro_sensitivity", "sens [95 %]", "{:.3f}"),
    ("macro_specificity", "spec [95 %]", "{:.3f}"),
    ("macro_f1", "F1 [95 %]", "{:.3f}"),
    ("mcc", "MCC [95 %]", "{:.3f}"),
)
DEPLOY_COLUMNS = (
    ("size_kb", "size KB", "{:.1f}"),
    ("latency_1t_ms", "lat 1T ms", "{:.2f}"),
    ("latency_1t_p90_ms", "p90 1T", "{:.2f}"),
    ("latency_2t_ms", "lat 2T ms", "{:.2f}"),
    ("latency_2t_p90_ms", "p90 2T", "{:.2f}"),
    ("peak_memory_mb", "mem MB", "{:.1f}"),
    ("agreement", "agree float % [95 %]", "{:.1f}"),
    ("agreement_source", "agree src % [95 %]", "{:.1f}"),
)
COLUMNS = METRIC_COLUMNS + DEPLOY_COLUMNS
SEED_KEYS = ("accuracy", "macro_sensitivity", "macro_specificity", "macro_f1", "mcc")
NOTES = (
    "acc/sens/spec/F1/MCC on the test split (sens/spec: one-vs-rest, macro over the classes present "
    "in the test split). Brackets: 95 % intervals; Wilson for accuracy and agreement (test images "
    "taken as independent), percentile bootstrap over the test images for sens/spec/F1/MCC (over "
    "whole source images when the split is grouped: patches of one image are not independent). "
    "latency: median over single-image invokes, ai-edge-litert with XNNPACK, 1 and 2 threads; "
    "mem: peak RSS added by loading and running the model; agree: % same top-1 as the float Keras "
    "model / as the Keras model the artifact was converted from.")


def _fmt(value, fmt):
    return "-" if value is None else fmt.format(value)


def cell(row: dict, key: str, fmt: str) -> str:
    """``value [low, high]`` when the row has an interval for ``key``, else the value alone."""
    value = row.get(key)
    ci = (row.get("ci") or {}).get(key)
    if value is None or ci is None:
        return _fmt(value, fmt)
    return f"{fmt.format(value)} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def markdown_table(rows, names=None, columns=COLUMNS) -> str:
    names = [n for n in (names or rows) if n in rows]
    cols = list(columns)
    if any("device_latency_ms" in rows[n] for n in names) and columns is not METRIC_COLUMNS:
        cols.append(("device_latency_ms", "device ms", "{:.2f}"))
    lines = ["| model | " + " | ".join(h for _, h, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    for n in names:
        r = rows[n]
        lines.append(f"| {r['label']} | " + " | ".join(cell(r, k, f) for k, _, f in cols) + " |")
    return "\n".join(lines)


def table1(rows: dict) -> str:
    """Our two Table I rows with intervals, then the paper's printed figures."""
    cols = METRIC_COLUMNS[:3]
    lines = [markdown_table(rows, TABLE1_ROWS, cols)]
    for p in PAPER_TABLE1:
        lines.append(f"| {p['label']} ({PAPER_DATASET}) | "
                     + " | ".join(f.format(p[k]) for k, _, f in cols) + " |")
    return "\n".join(lines)


def paired_tests(rows: dict) -> list:
    """McNemar's exact test for every pair in PAIRS whose two rows were measured on one test set."""
    out = []
    for unknown in set(rows) - set(R.BY_NAME):
        R.get(unknown)   # an error: every row must be one of the registry's
    for p in PAIRS:
        a, b, why = p.a.name, p.b.name, p.why
        ra, rb = rows.get(a), rows.get(b)
        if not (ra and rb and "labels" in ra and "predictions" in ra and "predictions" in rb):
            continue
        t = stats.mcnemar_exact(ra["labels"], ra["predictions"], rb["predictions"])
        out.append({"a": a, "b": b, "why": why, "a_label": ra["label"], "b_label": rb["label"],
                    "accuracy_a": ra["accuracy"], "accuracy_b": rb["accuracy"], **t})
    return out


def paired_table(tests: list) -> str:
    lines = ["| A | B | what | acc A | acc B | B - A points | only A right | only B right | p |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for t in tests:
        lines.append(f"| {t['a_label']} | {t['b_label']} | {t['why']} | {t['accuracy_a']:.3f} | "
                     f"{t['accuracy_b']:.3f} | {t['difference_points']:+.1f} | {t['a_only']} | "
                     f"{t['b_only']} | {t['p_value']:.3g} |")
    return "\n".join(lines)


def seed_summary(repeats: list) -> dict:
    """{row: {metric: {"mean", "std", "values"}}} over repeats (one rows dict per seed)."""
    out = {}
    for name in repeats[0]:
        per = [r.get(name) for r in repeats]
        if any(p is None for p in per):
            continue
        out[name] = {"label": per[0]["label"]}
        for k in SEED_KEYS:
            values = [p.get(k) for p in per]
            mean, std = stats.mean_std(values)
            out[name][k] = {"mean": mean, "std": std, "values": values}
    return out


def seed_table(summary: dict) -> str:
    lines = ["| model | " + " | ".join(h.split(" [")[0] + " mean ± sd" for _, h, _ in METRIC_COLUMNS)
             + " | acc per seed |", "|---|" + "---:|" * (len(METRIC_COLUMNS) + 1)]
    for s in summary.values():
        cells = [f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}" if s[k]["std"] is not None else
                 _fmt(s[k]["mean"], "{:.3f}") for k, _, _ in METRIC_COLUMNS]
        per_seed = ", ".join(_fmt(v, "{:.3f}") for v in s["accuracy"]["values"])
        lines.append(f"| {s['label']} | " + " | ".join(cells) + f" | {per_seed} |")
    return "\n".join(lines)


def headline(rows: dict) -> dict:
    """The figures the project promises, computed from the table."""
    out = {}
    f, i8 = rows.get(R.FLOAT.name), rows.get(R.PTQ_INT8.name)
    if f and i8:
        out["int8_size_ratio"] = i8["size_kb"] / f["size_kb"]
        if f.get("latency_1t_ms") and i8.get("latency_1t_ms"):
            out["int8_latency_ratio_1t"] = i8["latency_1t_ms"] / f["latency_1t_ms"]
    pt = rows.get(R.PTQ_INT8_PER_TENSOR.name)
    if f and pt:
        out["int8_per_tensor_size_ratio"] = pt["size_kb"] / f["size_kb"]
    for keras, int8 in R.QAT_PAIRS:
        k, t, q = rows.get(keras.name), rows.get(int8.name), keras.train_mode
        if k and t:
            out[f"{q}_int8_minus_keras_points"] = 100.0 * (t["accuracy"] - k["accuracy"])
            out[f"{q}_int8_agreement_with_keras"] = t.get("agreement_source")
    fk = rows.get(R.FLOAT_KERAS.name)
    if fk and i8:
        out["ptq_drop_points"] = 100.0 * (fk["accuracy"] - i8["accuracy"])
    if fk and pt:
        out["ptq_per_tensor_drop_points"] = 100.0 * (fk["accuracy"] - pt["accuracy"])
    return out


# The question a comparison answers, and the rows of its short summary (terminal and report.html).
QUESTION = ("Does the paper's int8 model (saliency-guided training + PACT quantization-aware training) "
            "keep the float model's accuracy at a fraction of its size and latency, and how does it "
            "compare with plain post-training quantization (PTQ)?")
# The float row: its float32 .tflite (size, latency) where converted, else a Keras float model.
SUMMARY_FLOAT = (R.FLOAT, R.FLOAT_KERAS, R.SGT_KERAS)
SUMMARY_ROWS = (R.PTQ_INT8, R.SGT_PACT_QAT_INT8)
# The verdict's test: the paper's model against plain float training, else against its SGT model.
VERDICT_PAIRS = ((R.FLOAT_KERAS, R.SGT_PACT_QAT_INT8), (R.SGT_KERAS, R.SGT_PACT_QAT_INT8))
# Whose saliency maps the first screen quotes: the float model (Keras: it has gradients) and ours.
SALIENCY_FLOAT = (R.FLOAT_KERAS, R.SGT_KERAS)
SALIENCY_OURS = R.SGT_PACT_QAT_INT8
SUMMARY_COLUMNS = (("accuracy", "test acc [95 %]", "{:.3f}"), ("size_kb", "file KB", "{:.1f}"),
                   ("latency_1t_ms", "ms, 1 thread", "{:.2f}"),
                   ("agreement_source", "same top-1 as its Keras model, % [95 %]", "{:.1f}"))


def summary_rows(rows: dict) -> list:
    """The float row, PTQ int8 and the paper's int8 model: those of them the comparison has."""
    first = next((rows[r.name] for r in SUMMARY_FLOAT if r.name in rows), None)
    return [r for r in (first, *(rows.get(r.name) for r in SUMMARY_ROWS)) if r is not None]


def saliency_models(rows: dict) -> dict:
    """{row name: label} of the float model and the paper's int8 model, those the comparison has."""
    first = next((r for r in SALIENCY_FLOAT if r.name in rows), None)
    return {r.name: rows[r.name].get("label", r.label) for r in (first, SALIENCY_OURS)
            if r is not None and r.name in rows}


def summary_table(rows: dict) -> dict:
    """{"header", "rows"}: the summary's cells as strings (the same in the terminal and the report)."""
    return {"header": ["model", *(h for _, h, _ in SUMMARY_COLUMNS)],
            "rows": [[r["label"], *(cell(r, k, f) for k, _, f in SUMMARY_COLUMNS)] for r in summary_rows(rows)]}


def verdict(rows: dict, tests: list) -> str | None:
    """One sentence: what the paired test of the paper's model supports, and what int8 saves."""
    by_pair = {(t["a"], t["b"]): t for t in tests}
    t = next((by_pair[a.name, b.name] for a, b in VERDICT_PAIRS if (a.name, b.name) in by_pair), None)
    if t is None:
        return None
    n = rows[t["b"]]["n"]
    figures = (f"{t['accuracy_b']:.3f} vs {t['accuracy_a']:.3f}, {t['difference_points']:+.1f} points, "
               f"McNemar p = {t['p_value']:.2g}")
    if t["p_value"] >= 0.05:
        text = f"{t['b_label']} and {t['a_label']} cannot be told apart on these {n} test images ({figures})"
    else:
        better = "more" if t["difference_points"] > 0 else "less"
        text = f"{t['b_label']} is {better} accurate than {t['a_label']} on these {n} test images ({figures})"
    source = by_pair.get((R.SGT_KERAS.name, t["b"]))
    if source is not None and source is not t:      # what int8 fine-tuning did, apart from SGT itself
        text += (f"; against {source['a_label']}, the model it was fine-tuned from: "
                 f"{source['difference_points']:+.1f} points, p = {source['p_value']:.2g}")
    f, ours = rows.get(R.FLOAT.name), rows[t["b"]]
    if f and f.get("size_kb") and ours.get("size_kb"):
        text += f"; its file is {f['size_kb'] / ours['size_kb']:.1f}x smaller than float32"
        if f.get("latency_1t_ms") and ours.get("latency_1t_ms"):
            text += f" and {f['latency_1t_ms'] / ours['latency_1t_ms']:.1f}x faster on this CPU"
    return text + "."


def first_screen(rows: dict, tests: list) -> dict:
    """The comparison's first screen: the question, the short table and the verdict."""
    return {"question": QUESTION, **summary_table(rows), "verdict": verdict(rows, tests)}


def text_table(header, body) -> list:
    """Plain columns for a terminal (Markdown pipes are noise there)."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [fmt(header), *(fmt(r) for r in body)]


def screen_lines(screen: dict, about=()) -> list:
    """The first screen for a terminal: the question, ``about`` (what was trained on what), the
    short table and the verdict."""
    lines = [screen["question"], *about, "", *text_table(screen["header"], screen["rows"]), ""]
    return lines + ([f"verdict: {screen['verdict']}"] if screen["verdict"] else [])


def read_screen(json_path) -> dict:
    """The first screen as ``comparison.json`` stores it."""
    return json.loads(Path(json_path).read_text())["summary"]


def _markdown(rows, title, context, heads, tests, summary, n_seeds, screen) -> str:
    context = dict(context or {})
    budget = context.pop("training budget", None)
    md = [f"# {title}", "", screen["question"], ""]
    if screen["rows"]:
        md += ["| " + " | ".join(screen["header"]) + " |", "|---|" + "---:|" * (len(screen["header"]) - 1),
               *("| " + " | ".join(r) + " |" for r in screen["rows"]), ""]
    if screen["verdict"]:
        md += [f"**{screen['verdict']}**", ""]
    if context:
        md += [f"- {k}: {v}" for k, v in context.items()] + [""]
    if budget:
        md += ["## Training budgets", "", budget, ""]
    md += ["## Table I: our model vs the SGT model, and the paper's figures", "", table1(rows), "",
           PAPER_NOTE, "",
           "## All models: accuracy", "", markdown_table(rows, columns=METRIC_COLUMNS), "",
           "## All models: deployment", "", markdown_table(rows, columns=DEPLOY_COLUMNS), "",
           NOTES, ""]
    if tests:
        md += ["## Paired comparisons on the same test images (McNemar's exact test)", "",
               paired_table(tests), "",
               "only A/B right: test images exactly one of the two rows classifies correctly; p: "
               "two-sided exact binomial test of those against an even split. p >= 0.05: this test set "
               "cannot tell the two rows apart at the 5 % level (and with many pairs, a few p < 0.05 "
               "are expected by chance alone).", ""]
    if summary:
        md += [f"## Across {n_seeds} seeds (each seed its own split and training)", "",
               seed_table(summary), "",
               "mean ± sample standard deviation over the seeds; the tables above are the first seed's.", ""]
    if heads:
        md += ["## Headline figures", ""] + [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}"
                                              for k, v in heads.items()] + [""]
    return "\n".join(md)


def write_reports(rows: dict, out_dir, *, title="kvasir_tf comparison", context=None,
                  repeats=None) -> dict:
    """comparison.md / comparison.json and the accuracy-vs-size and accuracy-vs-latency plots.

    ``repeats``: one rows dict per seed (the first is ``rows``) for the mean ± sd table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heads, tests = headline(rows), paired_tests(rows)
    summary = seed_summary(repeats) if repeats and len(repeats) > 1 else None
    md_path = out / layout.MARKDOWN
    screen = first_screen(rows, tests)
    md_path.write_text(_markdown(rows, title, context, heads, tests, summary,
                                 len(repeats) if repeats else 1, screen))
    slim = {n: {k: v for k, v in r.items() if k not in PER_IMAGE_KEYS} for n, r in rows.items()}
    doc = {"summary": screen, "context": context or {}, "headline": heads, "rows": slim,
           "paired_tests": tests,
           "paper_table1": {"dataset": PAPER_DATASET, "rows": list(PAPER_TABLE1), "note": PAPER_NOTE}}
    if summary:
        doc["seeds"] = summary
    json_path = out / layout.JSON
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    plots = [_plot(rows, "size_kb", "file size (KB)", out / layout.ACCURACY_VS_SIZE),
             _plot(rows, "latency_1t_ms", "host latency, 1 thread (ms)", out / layout.ACCURACY_VS_LATENCY)]
    return {"markdown": md_path, "json": json_path, "plots": [p for p in plots if p]}


# ----------------------------------------------------------------------------- plots
MARKERS = "osD^vPX*h<>pd8H"
FORMAT_COLOURS = {"float": "tab:blue", "fp16": "tab:cyan", "dynamic": "tab:purple", "int8": "tab:red"}
DODGE_PT = 7.0          # points drawn this far apart when their x values (nearly) coincide
NEAR_X = 0.03           # "nearly": neighbours within this fraction of the x range


def _dodge(xs) -> list:
    """Horizontal offsets in points, so markers and error bars at one x sit side by side."""
    span = (max(xs) - min(xs)) or 1.0
    offsets, cluster = [0.0] * len(xs), []
    for i in sorted(range(len(xs)), key=lambda j: xs[j]) + [None]:
        if i is not None and cluster and xs[i] - xs[cluster[-1]] <= NEAR_X * span:
            cluster.append(i)
            continue
        for j, c in enumerate(cluster):
            offsets[c] = (j - (len(cluster) - 1) / 2.0) * DODGE_PT
        cluster = [i]
    return offsets


def accuracy_figure(rows, xkey, xlabel):
    """Accuracy (with its interval as an error bar) against ``xkey`` for the deployable artifacts.

    Each point gets its own marker and is named in a legend beside the axes, so no two labels
    can overlap however close the points are; points at one x are drawn a few points apart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import ScaledTranslation
    # Deployable artifacts only: a .keras checkpoint's size is not what a device stores.
    pts = sorted((r for r in rows.values() if r.get(xkey) is not None and r["format"] != "keras"),
                 key=lambda r: (r[xkey], r["accuracy"]))
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 4.5), dpi=120)
    offsets = _dodge([r[xkey] for r in pts])
    for i, (r, dx) in enumerate(zip(pts, offsets)):
        acc, ci = r["accuracy"], (r.get("ci") or {}).get("accuracy")
        yerr = [[acc - ci[0]], [ci[1] - acc]] if ci else None
        ax.errorbar([r[xkey]], [acc], yerr=yerr, fmt=MARKERS[i % len(MARKERS)], markersize=6,
                    color=FORMAT_COLOURS.get(r["format"], "tab:gray"), capsize=3, lw=1,
                    label=r["label"], transform=ax.transData + ScaledTranslation(dx / 72.0, 0,
                                                                               fig.dpi_scale_trans))
    # Artists drawn with an offset transform do not update the data limits: add them here.
    ax.update_datalim([(r[xkey], y) for r in pts
                       for y in (r["accuracy"], *((r.get("ci") or {}).get("accuracy") or ()))])
    ax.autoscale_view()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (bars: 95 % interval)")
    ax.set_title(f"accuracy vs {xlabel.split(' (')[0]}")
    ax.grid(alpha=0.3)
    ax.margins(x=0.08)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False, borderaxespad=0)
    fig.tight_layout()
    return fig


def _plot(rows, xkey, xlabel, path):
    fig = accuracy_figure(rows, xkey, xlabel)
    if fig is None:
        return None
    import matplotlib.pyplot as plt
    try:
        fig.savefig(path, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
