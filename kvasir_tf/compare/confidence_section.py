"""The comparison's confidence section: calibration before and after temperature scaling for
every row, reliability diagrams, risk-coverage curves, and paired differences (int8 against its
Keras model, SGT against plain training) on the same test images.

Each row's figures come from :func:`kvasir_tf.evaluate.confidence_report` (temperature and
threshold fitted on the run's validation split, or carried by the int8 file's sidecar).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kvasir_tf import confidence, rundir
from kvasir_tf.compare import layout, rows

SECTION_TITLE = "## Confidence: calibration and selective prediction"
# b - a on the same images; pairs whose rows the comparison has.
PAIRS = (
    rows.pair(rows.FLOAT_KERAS, rows.PTQ_INT8, "PTQ int8 vs its float model"),
    *(rows.pair(keras, int8, "int8 vs its Keras model") for keras, int8 in rows.QAT_PAIRS),
    rows.pair(rows.FLOAT_KERAS, rows.SGT_KERAS, "saliency-guided vs plain training"),
    rows.pair(rows.FLOAT_KERAS, rows.SGT_PACT_QAT_INT8, "the paper's model vs the float model"),
)
# The overlay's pair: the float model and the paper's int8 model, else the PTQ one.
OVERLAY = (rows.pair(rows.FLOAT_KERAS, rows.SGT_PACT_QAT_INT8, "overlay"),
           rows.pair(rows.FLOAT_KERAS, rows.PTQ_INT8, "overlay"))


def _rows_with_confidence(table_rows: dict) -> dict:
    return {n: r for n, r in table_rows.items() if r.get("confidence") and r.get("probabilities") is not None}


def paired(table_rows: dict, groups=None) -> list:
    """Paired bootstrap differences of ECE / Brier / NLL (raw and after temperature) per pair."""
    table_rows = _rows_with_confidence(table_rows)
    out = []
    for p in PAIRS:
        if not p.present_in(table_rows):
            continue
        a, b, why = p.a.name, p.b.name, p.why
        ra, rb = table_rows[a], table_rows[b]
        y = np.asarray(ra["labels"])
        pa, pb = np.asarray(ra["probabilities"]), np.asarray(rb["probabilities"])
        fa, fb = ra["confidence"]["floor"], rb["confidence"]["floor"]
        entry = {"a": a, "b": b, "why": why,
                 "raw": confidence.paired_differences(pa, pb, y, floor_a=fa, floor_b=fb, groups=groups)}
        ta, tb = ra["confidence"].get("temperature"), rb["confidence"].get("temperature")
        if ta and tb:
            entry["scaled"] = confidence.paired_differences(
                confidence.apply_temperature(pa, ta, fa), confidence.apply_temperature(pb, tb, fb), y,
                floor_a=fa, floor_b=fb, groups=groups)
        out.append(entry)
    return out


def _ci(block, key) -> str:
    lo, hi = block["intervals"][key]
    return f"{block[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def table(table_rows: dict) -> str:
    """One line per row: ECE / Brier / NLL raw and after T (95 % bootstrap intervals), T, AURC,
    and the selective figures at the validation-chosen threshold."""
    lines = ["| model | ECE | ECE after T | Brier | Brier after T | NLL | NLL after T | T | AURC "
             "| uncertain below | coverage | accuracy kept |", "|" + "---|" * 12]
    for name, r in _rows_with_confidence(table_rows).items():
        c = r["confidence"]
        raw, sc, sel = c["raw"], c.get("scaled"), c.get("selective") or {}
        cells = [r.get("label", name)]
        for key in ("ece", "brier", "nll"):
            cells += [_ci(raw, key), _ci(sc, key) if sc else ""]
        cells += [f"{c['temperature']:.2f}" if sc else "", f"{(sc or raw)['aurc']:.3f}"]
        if sel:
            thr, acc = sel.get("threshold"), sel.get("accuracy")
            cells += ["none reached" if thr is None else f"{thr:.3f}", f"{sel['coverage']:.3f}",
                      "" if acc is None else f"{acc:.3f}"]
        else:
            cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(tests: list, table_rows: dict) -> str:
    lines = ["| pair (b - a) | why | ECE | Brier | NLL | ECE after T | NLL after T |", "|" + "---|" * 7]

    def cell(d, key):
        if d is None:
            return ""
        v = d[key]
        lo, hi = v["interval"]
        star = " *" if lo > 0 or hi < 0 else ""
        return f"{v['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]{star}"
    for t in tests:
        la, lb = table_rows[t["a"]].get("label", t["a"]), table_rows[t["b"]].get("label", t["b"])
        sc = t.get("scaled")
        lines.append(f"| {lb} - {la} | {t['why']} | {cell(t['raw'], 'ece')} | {cell(t['raw'], 'brier')} "
                     f"| {cell(t['raw'], 'nll')} | {cell(sc, 'ece')} | {cell(sc, 'nll')} |")
    return "\n".join(lines)


def markdown(table_rows: dict, tests: list) -> str:
    rows_c = _rows_with_confidence(table_rows)
    any_row = next(iter(rows_c.values()))["confidence"]
    target = next((r["confidence"].get("target_accuracy") for r in rows_c.values()
                   if r["confidence"].get("target_accuracy")), confidence.DEFAULT_TARGET_ACCURACY)
    md = [SECTION_TITLE, "",
          f"Expected calibration error over {any_row['bins']} {any_row['binning']} bins of top-label "
          "confidence, Brier score and negative log-likelihood on the test images, raw and after "
          "temperature scaling (T fitted on the validation split only: for an int8 file the T its "
          "sidecar carries, which the firmware and the app apply). AURC: area under the risk-coverage "
          "curve (lower is better). \"uncertain below\": the confidence threshold chosen on validation "
          f"for {target:.0%} accuracy, and what it gives on test (coverage: share of test images "
          "answered). Brackets: 95 % bootstrap intervals,"
          f" over {any_row.get('resampled', 'test images')} (ECE is biased upwards on small "
          "sets, so its interval can lie above the point value).", "", table(table_rows), ""]
    if tests:
        md += ["Paired differences on the same test images (bootstrap of b - a; * the interval "
               "excludes 0: a difference this test set can see):", "", paired_table(tests, table_rows), ""]
    return "\n".join(md)


# ----------------------------------------------------------------------------- plots
def _axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.8, 4.4), dpi=120)
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfectly calibrated")
    ax.set_xlabel("confidence (mean of the bin)")
    ax.set_ylabel("accuracy of the bin")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt
    try:
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)


def _reliability_line(ax, r, scaled: bool, **kw):
    c = r["confidence"]
    p = np.asarray(r["probabilities"])
    if scaled:
        p = confidence.apply_temperature(p, c["temperature"], c["floor"])
    pts = confidence.reliability(p, r["labels"], c["bins"])
    ax.plot(pts["confidence"], pts["accuracy"], marker="o", ms=4, **kw)


def reliability_figure(name, r, path) -> Path:
    """One row: its bins raw and after temperature scaling."""
    fig, ax = _axes()
    c = r["confidence"]
    _reliability_line(ax, r, False, color="tab:red", label=f"raw (ECE {c['raw']['ece']:.3f})")
    if c.get("scaled"):
        _reliability_line(ax, r, True, color="tab:blue",
                          label=f"T = {c['temperature']:.2f} (ECE {c['scaled']['ece']:.3f})")
    ax.set_title(f"{r.get('label', name)}\n{c['bins']} equal-mass bins, n {c['n']}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def overlay_figure(ra, rb, path) -> Path:
    """Float against int8 in one diagram, both raw."""
    fig, ax = _axes()
    for r, colour in ((ra, "tab:blue"), (rb, "tab:red")):
        _reliability_line(ax, r, False, color=colour,
                          label=f"{r.get('label')} (ECE {r['confidence']['raw']['ece']:.3f})")
    ax.set_title("float vs int8, raw confidence", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def risk_coverage_figure(table_rows: dict, path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=120)
    for name, r in table_rows.items():
        c = r["confidence"]
        p = np.asarray(r["probabilities"])
        if c.get("scaled"):
            p = confidence.apply_temperature(p, c["temperature"], c["floor"])
        rc = confidence.risk_coverage(p, r["labels"])
        ax.plot(rc["coverage"], 1.0 - rc["accuracy"], lw=1.2,
                ls="-" if r.get("format") == "keras" else "--",
                label=f"{r.get('label', name)} (AURC {rc['aurc']:.3f})")
    ax.set_xlabel("coverage (share of test images answered, most confident first)")
    ax.set_ylabel("risk (1 - accuracy of those answered)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    return _save(fig, path)


def write_confidence_report(out_dir, table_rows: dict, markdown_path=None) -> dict | None:
    """confidence.json, the plots, and the section appended to ``markdown_path``; None when no row
    carries confidence figures. Paired intervals resample the table_rows' ``test_groups`` (source
    images) when they have them."""
    rows_c = _rows_with_confidence(table_rows)
    if not rows_c:
        return None
    out = Path(out_dir)
    tests = paired(rows_c, next(iter(rows_c.values())).get("test_groups"))
    plots = [reliability_figure(n, r, layout.reliability_png(out, n)) for n, r in rows_c.items()]
    pair = next((p for p in OVERLAY if p.present_in(rows_c)), None)
    if pair:
        plots.append(overlay_figure(rows_c[pair.a.name], rows_c[pair.b.name], out / layout.RELIABILITY_OVERLAY))
    plots.append(risk_coverage_figure(rows_c, out / layout.RISK_COVERAGE))
    doc = {"rows": {n: r["confidence"] for n, r in rows_c.items()}, "paired": tests}
    path = out / layout.CONFIDENCE_JSON
    rundir.write_json_atomic(path, doc)
    if markdown_path is not None and Path(markdown_path).is_file():
        text = Path(markdown_path).read_text()
        cut = text.find(SECTION_TITLE)
        text = (text[:cut] if cut >= 0 else text).rstrip("\n") + "\n\n" + markdown(rows_c, tests)
        Path(markdown_path).write_text(text)
    return {"json": path, "plots": plots}
