"""The comparison's report: Markdown tables, headline figures, JSON and the two plots."""
from __future__ import annotations

import json
from pathlib import Path

# The paper's Table I: our quantized model against the float SGT model it starts from.
TABLE1_ROWS = ("sgt-keras", "sgt-pact-qat-int8")

COLUMNS = (  # key, header, format
    ("accuracy", "acc", "{:.3f}"),
    ("macro_sensitivity", "sens", "{:.3f}"),
    ("macro_specificity", "spec", "{:.3f}"),
    ("macro_f1", "F1", "{:.3f}"),
    ("mcc", "MCC", "{:.3f}"),
    ("size_kb", "size KB", "{:.1f}"),
    ("latency_1t_ms", "lat 1T ms", "{:.2f}"),
    ("latency_1t_p90_ms", "p90 1T", "{:.2f}"),
    ("latency_2t_ms", "lat 2T ms", "{:.2f}"),
    ("latency_2t_p90_ms", "p90 2T", "{:.2f}"),
    ("peak_memory_mb", "mem MB", "{:.1f}"),
    ("agreement", "agree float %", "{:.1f}"),
    ("agreement_source", "agree src %", "{:.1f}"),
)


def _fmt(value, fmt):
    return "-" if value is None else fmt.format(value)


def markdown_table(rows, names=None, columns=COLUMNS) -> str:
    names = [n for n in (names or rows) if n in rows]
    cols = list(columns)
    if any("device_latency_ms" in rows[n] for n in names):
        cols.append(("device_latency_ms", "device ms", "{:.2f}"))
    head = "| model | " + " | ".join(h for _, h, _ in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [head, sep]
    for n in names:
        r = rows[n]
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(r.get(k), f) for k, _, f in cols) + " |")
    return "\n".join(lines)


def headline(rows: dict) -> dict:
    """The figures the project promises, computed from the table."""
    out = {}
    f, i8 = rows.get("float"), rows.get("ptq-int8")
    if f and i8:
        out["int8_size_ratio"] = i8["size_kb"] / f["size_kb"]
        if f.get("latency_1t_ms") and i8.get("latency_1t_ms"):
            out["int8_latency_ratio_1t"] = i8["latency_1t_ms"] / f["latency_1t_ms"]
    pt = rows.get("ptq-int8-per-tensor")
    if f and pt:
        out["int8_per_tensor_size_ratio"] = pt["size_kb"] / f["size_kb"]
    for q in ("qat", "pact-qat", "sgt-pact-qat"):
        k, t = rows.get(f"{q}-keras"), rows.get(f"{q}-int8")
        if k and t:
            out[f"{q}_int8_minus_keras_points"] = 100.0 * (t["accuracy"] - k["accuracy"])
            out[f"{q}_int8_agreement_with_keras"] = t.get("agreement_source")
    fk = rows.get("float-keras")
    if fk and i8:
        out["ptq_drop_points"] = 100.0 * (fk["accuracy"] - i8["accuracy"])
    if fk and pt:
        out["ptq_per_tensor_drop_points"] = 100.0 * (fk["accuracy"] - pt["accuracy"])
    return out


def write_reports(rows: dict, out_dir, *, title="kvasir_tf comparison", context=None) -> dict:
    """comparison.md / comparison.json and the accuracy-vs-size and accuracy-vs-latency plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heads = headline(rows)
    md = [f"# {title}", ""]
    if context:
        md += [f"- {k}: {v}" for k, v in context.items()] + [""]
    md += ["## Table I: our model vs the SGT model", "",
           markdown_table(rows, TABLE1_ROWS), "",
           "## All models", "", markdown_table(rows), "",
           "acc/sens/spec/F1/MCC on the test split (sens/spec: one-vs-rest, macro over the classes present in the test split); "
           "latency: median over single-image invokes, ai-edge-litert with XNNPACK, 1 and 2 threads; "
           "mem: peak RSS added by loading and running the model; agree: % same top-1 as the float "
           "Keras model / as the Keras model the artifact was converted from.", ""]
    if heads:
        md += ["## Headline figures", ""] + [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}"
                                              for k, v in heads.items()] + [""]
    md_path = out / "comparison.md"
    md_path.write_text("\n".join(md))
    slim = {n: {k: v for k, v in r.items() if k != "predictions"} for n, r in rows.items()}
    json_path = out / "comparison.json"
    json_path.write_text(json.dumps({"context": context or {}, "headline": heads, "rows": slim},
                                    indent=2, default=str) + "\n")
    plots = [_plot(rows, "size_kb", "file size (KB)", out / "accuracy_vs_size.png"),
             _plot(rows, "latency_1t_ms", "host latency, 1 thread (ms)", out / "accuracy_vs_latency.png")]
    return {"markdown": md_path, "json": json_path, "plots": [p for p in plots if p]}


def _plot(rows, xkey, xlabel, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # Deployable artifacts only: a .keras checkpoint's size is not what a device stores.
    pts = sorted((r[xkey], r["accuracy"], r["label"], r["format"]) for r in rows.values()
                 if r.get(xkey) is not None and r["format"] != "keras")
    if not pts:
        return None
    colours = {"float": "tab:blue", "fp16": "tab:cyan", "dynamic": "tab:purple", "int8": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for i, (x, y, label, fmt) in enumerate(pts):
        ax.scatter(x, y, s=40, color=colours.get(fmt, "tab:gray"))
        # alternate label offsets so neighbours with equal accuracy stay readable
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4 if i % 2 == 0 else -11),
                    fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"accuracy vs {xlabel.split(' (')[0]}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
