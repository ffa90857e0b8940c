"""report.py: intervals in every table, the paper's Table I beside ours, McNemar for the paired
rows, the seeds table, a readable JSON, and plots with error bars whose labels never overlap."""
import json
import re

import numpy as np
import pytest

from kvasir_tf import stats
from kvasir_tf.compare import report
from kvasir_tf.compare import rows as R
from kvasir_tf.errors import KvasirError

N = 60
RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 2, N)


def _preds(acc, seed):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(N) < acc, LABELS, 1 - LABELS)


def _row(name, train_mode, fmt, preds, size_kb=None, lat=None, label=None):
    from kvasir_tf.metrics import classification_report
    r = classification_report(LABELS, preds, ["mucosa", "polyp"])
    row = {"name": name, "label": label or name, "train_mode": train_mode, "format": fmt,
           "n": N, "labels": LABELS.tolist(), "predictions": [int(v) for v in preds],
           **{k: r[k] for k in ("accuracy", "macro_sensitivity", "macro_specificity", "macro_f1", "mcc")}}
    if size_kb is not None:
        row["size_kb"] = size_kb
    if lat is not None:
        row["latency_1t_ms"] = lat
    row["ci"] = stats.row_intervals(row, 2)
    return row


def _rows(seed=0):
    rows = {
        "float-keras": _row("float-keras", "float", "keras", _preds(0.75, seed + 1)),
        "float": _row("float", "float", "float", _preds(0.75, seed + 1), 1500.0, 9.0, "float32 TFLite"),
        "ptq-int8": _row("ptq-int8", "float", "int8", _preds(0.70, seed + 2), 480.0, 4.0, "PTQ int8"),
        "sgt-keras": _row("sgt-keras", "sgt", "keras", _preds(0.74, seed + 3), label="SGT float (Keras)"),
        "qat-keras": _row("qat-keras", "qat", "keras", _preds(0.73, seed + 4)),
        # Two int8 rows with the same size and accuracy: their labels used to print over each other.
        "qat-int8": _row("qat-int8", "qat", "int8", _preds(0.73, seed + 4), 500.0, 3.5, "TF-MOT QAT int8"),
        "sgt-pact-qat-int8": _row("sgt-pact-qat-int8", "sgt-pact-qat", "int8", _preds(0.73, seed + 4),
                                  500.0, 3.5, "SGT-PACT-QAT int8 (ours)"),
        "float-ft-keras": _row("float-ft-keras", "float-ft", "keras", _preds(0.76, seed + 5)),
    }
    return rows


def test_every_figure_carries_its_interval():
    rows = _rows()
    r = rows["ptq-int8"]
    md = report.markdown_table(rows, ["ptq-int8"], report.METRIC_COLUMNS)
    lo, hi = r["ci"]["accuracy"]
    assert f"| PTQ int8 | {r['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] |" in md
    for key in ("macro_sensitivity", "macro_specificity", "macro_f1", "mcc"):
        lo, hi = r["ci"][key]
        assert f"{r[key]:.3f} [{lo:.3f}, {hi:.3f}]" in md
    # No interval known: the value alone.
    bare = {"x": {"label": "x", "accuracy": 0.5}}
    assert "| x | 0.500 |" in report.markdown_table(bare, columns=report.METRIC_COLUMNS[:1])


def test_table1_shows_the_papers_rows_beside_ours(tmp_path):
    files = report.write_reports(_rows(), tmp_path)
    md = files["markdown"].read_text()
    section = md.split("## Table I")[1].split("## All models")[0]
    assert "| SGT float (Keras) | " in section and "| SGT-PACT-QAT int8 (ours) | " in section
    assert "| paper: SGT model (Kvasir v2, 8 classes) | 0.775 | 0.781 | 0.781 |" in section
    assert "| paper: our model (SGT + PACT QAT) (Kvasir v2, 8 classes) | 0.790 | 0.844 | 0.844 |" in section
    assert "Compare accuracy directly" in section and "sensitivity equals its specificity" in section
    doc = json.loads(files["json"].read_text())
    paper = {r["name"]: r for r in doc["paper_table1"]["rows"]}
    assert paper["paper-ours"]["accuracy"] == 0.7905 and paper["paper-ours"]["macro_sensitivity"] == 0.8437
    assert paper["paper-sgt"]["accuracy"] == 0.7748 and paper["paper-sgt"]["macro_specificity"] == 0.7812


def test_paired_tests_are_mcnemar_on_the_rows_present():
    rows = _rows()
    tests = report.paired_tests(rows)
    pairs = [(t["a"], t["b"]) for t in tests]
    # Present pairs in PAIRS order; pairs with a missing row are left out.
    assert pairs == [("sgt-keras", "sgt-pact-qat-int8"), ("float-keras", "sgt-keras"),
                     ("float-keras", "sgt-pact-qat-int8"), ("qat-keras", "qat-int8"), ("float-keras", "ptq-int8"), ("ptq-int8", "qat-int8"),
                     ("float-ft-keras", "qat-int8")]
    for t in tests:
        want = stats.mcnemar_exact(LABELS, rows[t["a"]]["predictions"], rows[t["b"]]["predictions"])
        assert (t["a_only"], t["b_only"]) == (want["a_only"], want["b_only"])
        assert t["p_value"] == pytest.approx(want["p_value"])
    same = next(t for t in tests if t["b"] == "qat-int8" and t["a"] == "qat-keras")
    assert (same["a_only"], same["b_only"], same["p_value"]) == (0, 0, 1.0)   # identical predictions
    table = report.paired_table(tests)
    # a row the registry does not know is an error, not a silently skipped pair
    rows["sgt-pact-qat-int8-typo"] = rows.pop("sgt-pact-qat-int8")
    with pytest.raises(KvasirError, match="unknown comparison row 'sgt-pact-qat-int8-typo'"):
        report.paired_tests(rows)
    assert f"| {same['a_label']} | TF-MOT QAT int8 | int8 vs its Keras model | " in table


def test_seed_table_is_mean_and_sd_over_repeats(tmp_path):
    repeats = [_rows(0), _rows(10), _rows(20)]
    files = report.write_reports(repeats[0], tmp_path, repeats=repeats)
    accs = [r["ptq-int8"]["accuracy"] for r in repeats]
    mean, sd = float(np.mean(accs)), float(np.std(accs, ddof=1))
    md = files["markdown"].read_text()
    assert "## Across 3 seeds" in md
    line = next(l for l in md.splitlines() if l.startswith("| PTQ int8 |") and "±" in l)
    assert line.split(" | ")[1] == f"{mean:.3f} ± {sd:.3f}"
    assert line.rstrip(" |").endswith(", ".join(f"{a:.3f}" for a in accs))
    doc = json.loads(files["json"].read_text())
    assert doc["seeds"]["ptq-int8"]["accuracy"]["mean"] == pytest.approx(mean)
    assert doc["seeds"]["ptq-int8"]["accuracy"]["values"] == pytest.approx(accs)
    # One seed: no seeds section.
    assert "Across" not in report.write_reports(repeats[0], tmp_path / "one")["markdown"].read_text()


def test_json_keeps_intervals_and_drops_per_image_lists(tmp_path):
    files = report.write_reports(_rows(), tmp_path, context={"seed": 0, "training budget": "B."})
    doc = json.loads(files["json"].read_text())
    row = doc["rows"]["ptq-int8"]
    assert "predictions" not in row and "labels" not in row
    assert row["ci"]["accuracy"][0] < row["accuracy"] < row["ci"]["accuracy"][1]
    assert {t["b"] for t in doc["paired_tests"]} >= {"sgt-pact-qat-int8", "qat-int8"}
    assert "## Training budgets\n\nB." in files["markdown"].read_text()


def _text_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = list(ax.get_legend().get_texts()) + list(ax.texts)
    texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]


def test_plot_has_error_bars_and_no_overlapping_labels():
    rows = _rows()
    fig = report.accuracy_figure(rows, "size_kb", "file size (KB)")
    try:
        boxes = _text_boxes(fig)
        names = [t for t, _ in boxes]
        for label in ("TF-MOT QAT int8", "SGT-PACT-QAT int8 (ours)", "PTQ int8", "float32 TFLite"):
            assert label in names
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not boxes[i][1].overlaps(boxes[j][1]), (boxes[i][0], boxes[j][0])
        ax = fig.axes[0]
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for r in rows.values():   # every point and its whole bar inside the axes
            if r["format"] != "keras":
                assert x0 < r["size_kb"] < x1 and y0 < r["ci"]["accuracy"][0] < r["ci"]["accuracy"][1] < y1
        bars = {c.get_label(): c for c in ax.containers}
        # The error bar spans the row's interval.
        seg = bars["PTQ int8"].lines[2][0].get_segments()[0]
        assert [seg[0][1], seg[1][1]] == pytest.approx(rows["ptq-int8"]["ci"]["accuracy"])
        # Equal size and accuracy: the two markers are drawn side by side, not on top of each other.
        a, b = (bars[n].lines[0] for n in ("TF-MOT QAT int8", "SGT-PACT-QAT int8 (ours)"))
        pa = a.get_transform().transform(np.column_stack(a.get_data()))[0]
        pb = b.get_transform().transform(np.column_stack(b.get_data()))[0]
        assert abs(pa[0] - pb[0]) >= 5 and pa[1] == pytest.approx(pb[1])
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


def test_plots_written_as_png(tmp_path):
    files = report.write_reports(_rows(), tmp_path)
    assert [p.name for p in files["plots"]] == ["accuracy_vs_size.png", "accuracy_vs_latency.png"]
    for p in files["plots"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_registry_of_rows_and_pairs_name_only_its_rows():
    """Every row is defined once in kvasir_tf.compare.rows; pairs are built from its objects, an unknown
    name is an error, and the comparison, report, saliency study and demo all use it."""
    from kvasir_tf import demo
    from kvasir_tf.explain import study
    assert R.get("sgt-pact-qat-int8") is R.SGT_PACT_QAT_INT8
    assert R.SGT_PACT_QAT_INT8.artifact == "tflite" and R.SGT_KERAS.artifact == "keras"
    assert R.keras_row_of("pact-qat") is R.PACT_QAT_KERAS and R.keras_row_of("nope") is None
    with pytest.raises(KvasirError, match="unknown comparison row 'float-kears'"):
        R.get("float-kears")
    with pytest.raises(KvasirError, match="unknown comparison row 'qat-int4'"):
        R.pair("qat-keras", "qat-int4", "typo")
    assert R.pair("qat-keras", "qat-int8", "x") == R.Pair(R.QAT_KERAS, R.QAT_INT8, "x")
    assert len({r.name for r in R.ROWS}) == len(R.ROWS) == 16
    for p in (*report.PAIRS, *study.PAIRS):
        assert R.BY_NAME[p.a.name] is p.a and R.BY_NAME[p.b.name] is p.b
    assert set(demo.QUICK_MODELS) | set(demo.DEMO_SKIPPED) <= set(R.BY_NAME)


def _ours_right_on(rows, fraction):
    """The paper's int8 row right on the first ``fraction`` of the images, wrong on the rest."""
    right = np.arange(N) < int(fraction * N)
    rows["sgt-pact-qat-int8"] = _row("sgt-pact-qat-int8", "sgt-pact-qat", "int8",
                                     np.where(right, LABELS, 1 - LABELS), 500.0, 3.5, "SGT-PACT-QAT int8 (ours)")
    return rows


def test_first_screen_is_float_ptq_and_ours_with_intervals_and_a_verdict(tmp_path):
    rows = _rows()
    screen = report.first_screen(rows, report.paired_tests(rows))
    assert [r[0] for r in screen["rows"]] == ["float32 TFLite", "PTQ int8", "SGT-PACT-QAT int8 (ours)"]
    acc = rows["ptq-int8"]["accuracy"]
    lo, hi = rows["ptq-int8"]["ci"]["accuracy"]
    assert screen["rows"][1][1] == f"{acc:.3f} [{lo:.3f}, {hi:.3f}]" and screen["rows"][1][2] == "480.0"
    t = next(t for t in report.paired_tests(rows) if (t["a"], t["b"]) == ("float-keras", "sgt-pact-qat-int8"))
    tab1 = next(t for t in report.paired_tests(rows) if (t["a"], t["b"]) == ("sgt-keras", "sgt-pact-qat-int8"))
    assert t["p_value"] >= 0.05 and tab1["difference_points"] != t["difference_points"]
    assert screen["verdict"] == (
        f"SGT-PACT-QAT int8 (ours) and float-keras cannot be told apart on these {N} test images "
        f"({t['accuracy_b']:.3f} vs {t['accuracy_a']:.3f}, {t['difference_points']:+.1f} points, McNemar p = "
        f"{t['p_value']:.2g}); against SGT float (Keras), the model it was fine-tuned from: "
        f"{tab1['difference_points']:+.1f} points, p = {tab1['p_value']:.2g}; its file is 3.0x smaller than "
        "float32 and 2.6x faster on this CPU.")
    # the same screen opens comparison.json and comparison.md
    files = report.write_reports(rows, tmp_path)
    assert report.read_screen(files["json"]) == json.loads(json.dumps(screen))
    md = files["markdown"].read_text().splitlines()
    assert md[2] == report.QUESTION and f"**{screen['verdict']}**" in md[:12]


@pytest.mark.parametrize("fraction, word", [(1.0, "more"), (0.3, "less")])
def test_verdict_names_a_difference_the_test_finds(fraction, word):
    rows = _ours_right_on(_rows(), fraction)
    tests = report.paired_tests(rows)
    t = next(t for t in tests if (t["a"], t["b"]) == ("float-keras", "sgt-pact-qat-int8"))
    assert t["p_value"] < 0.05
    assert report.verdict(rows, tests).startswith(
        f"SGT-PACT-QAT int8 (ours) is {word} accurate than float-keras on these {N} test images")


def test_without_a_float_run_the_screen_and_verdict_use_the_sgt_model():
    rows = {k: v for k, v in _rows().items() if k in ("sgt-keras", "sgt-pact-qat-int8")}
    tests = report.paired_tests(rows)
    screen = report.first_screen(rows, tests)
    assert [r[0] for r in screen["rows"]] == ["SGT float (Keras)", "SGT-PACT-QAT int8 (ours)"]
    assert screen["rows"][0][2] == "-"                       # a checkpoint has no deployed file
    assert "and SGT float (Keras) cannot be told apart" in screen["verdict"]
    assert "smaller" not in screen["verdict"]                # no float32 file to compare with
    assert report.saliency_models(rows) == {"sgt-keras": "SGT float (Keras)",
                                            "sgt-pact-qat-int8": "SGT-PACT-QAT int8 (ours)"}
    assert report.verdict({}, []) is None


def test_terminal_table_aligns_its_columns():
    screen = report.first_screen(_rows(), [])
    lines = report.text_table(screen["header"], screen["rows"])
    assert len(lines) == 4 and "|" not in "".join(lines)
    # cells are separated by two spaces or more; every number column ends at one offset on every line
    spans = [[(m.group(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", line)] for line in lines]
    assert [[c for c, _ in s] for s in spans] == [screen["header"], *screen["rows"]]
    for col in range(1, len(screen["header"])):
        assert len({s[col][1] for s in spans}) == 1, (col, lines)
