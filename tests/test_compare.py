"""The comparison: agreement, headline ratios, tables, device-log merge, and one real small run."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kvasir_tf import compare, rundir
from kvasir_tf.compare import comparison, layout, report
from kvasir_tf.compare import runs as compare_runs
from kvasir_tf.config import TrainConfig, base_config
from kvasir_tf.errors import KvasirError

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def _row(name, train_mode, fmt, acc, preds, size_kb=100.0, lat=None):
    return {"name": name, "label": name, "train_mode": train_mode, "format": fmt, "accuracy": acc,
            "macro_sensitivity": acc, "macro_specificity": 0.9, "macro_f1": acc, "mcc": acc / 2,
            "n": len(preds), "size_kb": size_kb, "predictions": list(preds),
            **({"latency_1t_ms": lat} if lat is not None else {})}


def _rows():
    rows = {
        "float-keras": _row("float-keras", "float", "keras", 0.80, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]),
        "float": _row("float", "float", "float", 0.80, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1], 400.0, 10.0),
        "ptq-int8": _row("ptq-int8", "float", "int8", 0.70, [0, 1, 2, 3, 0, 1, 2, 3, 3, 3], 110.0, 4.0),
        "qat-keras": _row("qat-keras", "qat", "keras", 0.75, [0, 1, 2, 3, 0, 1, 2, 0, 0, 1]),
        "qat-int8": _row("qat-int8", "qat", "int8", 0.74, [0, 1, 2, 3, 0, 1, 2, 0, 0, 2], 105.0, 3.5),
    }
    comparison._agreement(rows)
    return rows


def test_agreement_against_float_and_source_model():
    rows = _rows()
    assert rows["float"]["agreement"] == 100.0
    assert rows["ptq-int8"]["agreement"] == 80.0          # two of ten differ from float-keras
    assert rows["qat-int8"]["agreement_source"] == 90.0   # one of ten differs from qat-keras
    assert rows["qat-int8"]["agreement"] == 80.0
    assert "agreement_source" not in rows["qat-keras"]    # a Keras row is its own source


def test_headline_ratios_follow_the_rows():
    h = report.headline(_rows())
    assert h["int8_size_ratio"] == pytest.approx(110.0 / 400.0)
    assert h["int8_latency_ratio_1t"] == pytest.approx(0.4)
    assert h["ptq_drop_points"] == pytest.approx(10.0)
    assert h["qat_int8_minus_keras_points"] == pytest.approx(-1.0)
    assert h["qat_int8_agreement_with_keras"] == 90.0


def test_reports_written(tmp_path):
    files = report.write_reports(_rows(), tmp_path, context={"seed": 0})
    md = files["markdown"].read_text()
    assert "| ptq-int8 | 0.700 |" in md and "| float-keras |" in md
    assert "- int8_size_ratio: 0.275" in md
    doc = json.loads(files["json"].read_text())
    assert doc["rows"]["qat-int8"]["agreement_source"] == 90.0
    assert "predictions" not in doc["rows"]["qat-int8"]
    assert [p.name for p in files["plots"]] == ["accuracy_vs_size.png", "accuracy_vs_latency.png"]
    for p in files["plots"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_device_logs_merge_into_rows():
    rows = _rows()
    compare.merge_device_logs(rows, {"qat-int8": DATA / "firmware_serial.log",
                                     "ptq-int8": DATA / "benchmark_model_android.txt"})
    from kvasir_tf import device_logs as dl
    serial = dl.parse_serial((DATA / "firmware_serial.log").read_text())
    assert rows["qat-int8"]["device_latency_ms"] == pytest.approx(serial["latency_median_ms"])
    bench = dl.parse_benchmark_model((DATA / "benchmark_model_android.txt").read_text())
    assert rows["ptq-int8"]["device_latency_ms"] == pytest.approx(
        bench.get("inference_median_ms", bench["inference_avg_ms"]))
    assert "device ms" in report.markdown_table(rows)
    with pytest.raises(KvasirError, match="no such row"):
        compare.merge_device_logs(rows, {"nope": DATA / "firmware_serial.log"})


def test_unknown_model_and_recipe_are_errors(tmp_path):
    with pytest.raises(KvasirError, match="unknown model"):
        compare.select_variants(["float", "int4"])
    with pytest.raises(KvasirError, match="unknown recipe"):
        compare.run_configs(tmp_path, ["float"], TrainConfig(demo=True), recipe="magic")


def test_control_runs_have_the_qat_runs_budget(tmp_path):
    """float-ft / sgt-ft continue the float / SGT run as plain float training with the QAT runs'
    extra epochs and learning rate, so a QAT row and its control train equally long."""
    base = TrainConfig(demo=True, epochs=15, lr=1e-3)
    qat = {"epochs": 6, "lr": 5e-4}
    cfgs = compare.run_configs(tmp_path, ["qat", "float-ft", "sgt-pact-qat", "sgt-ft"], base, qat=qat)
    assert list(cfgs) == ["float", "sgt", "qat", "sgt-pact-qat", "float-ft", "sgt-ft"]
    for control, mode, qat_run in (("float-ft", "float", "qat"), ("sgt-ft", "sgt", "sgt-pact-qat")):
        c, q = cfgs[control], cfgs[qat_run]
        assert c.mode == mode and not c.spec.qat
        assert c.init_from == q.init_from == cfgs[mode].out
        assert (c.epochs, c.lr) == (q.epochs, q.lr) == (6, 5e-4)
        assert c.out.endswith(f"runs/{control}") and cfgs[mode].epochs == 15
    note = compare_runs.budget_note(cfgs, "finetune")
    assert "float-ft: 21 epochs (15 + 6 at lr 0.0005 from float)" in note
    assert "qat: 21 epochs" in note and "sgt: 15 epochs at lr 0.001" in note
    assert "compare a QAT row with its control" in note
    # scratch (the paper's one-stage recipe): no init_from, equal epochs, no control rows.
    scratch = compare.run_configs(tmp_path, ["qat", "sgt-pact-qat"], base, qat=qat, recipe="scratch")
    assert list(scratch) == ["qat", "sgt-pact-qat"]
    assert all(c.init_from is None and c.epochs == 15 for c in scratch.values())
    assert "equal" in compare_runs.budget_note(scratch, "scratch")
    assert not [v for v in compare.select_variants(None, "scratch") if v.train_mode in compare_runs.CONTROL_FROM]
    assert {"float-ft-keras", "sgt-ft-keras"} <= {v.name for v in compare.select_variants()}
    with pytest.raises(KvasirError, match="only in --recipe finetune"):
        compare.run_configs(tmp_path, ["float-ft"], base, recipe="scratch")


def test_seeds_repeat_with_their_own_splits(tmp_path, make_dataset_dir):
    """--seeds 2: two splits and trainings, each row's mean and sd, intervals everywhere."""
    data = make_dataset_dir({"a": 10, "b": 10})
    base = base_config({"data_dir": str(data), "image_size": 32, "alpha": 0.35, "epochs": 1,
                        "batch_size": 8, "progress": 0})
    result = compare.run_comparison(tmp_path / "cmp", base, variants=["float-keras"], seeds=2)
    first, second = result["repeats"]
    from kvasir_tf.data.split import load_manifest
    tests = [[p for p, _ in load_manifest(d).test] for d in
             (tmp_path / "cmp" / "runs" / "float", tmp_path / "cmp" / "seed-1" / "runs" / "float")]
    assert tests[0] != tests[1]                                    # each seed its own split
    assert rundir.read_config(tmp_path / "cmp" / "seed-1" / "runs" / "float")["seed"] == 1
    for rows in (first, second):
        row = rows["float-keras"]
        assert row["ci"]["accuracy"][0] <= row["accuracy"] <= row["ci"]["accuracy"][1]
        assert row["ci"]["mcc"][0] <= row["mcc"] <= row["ci"]["mcc"][1]
    doc = json.loads(result["files"]["json"].read_text())
    accs = [first["float-keras"]["accuracy"], second["float-keras"]["accuracy"]]
    assert doc["seeds"]["float-keras"]["accuracy"]["values"] == pytest.approx(accs)
    assert doc["seeds"]["float-keras"]["accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
    assert "## Across 2 seeds" in result["files"]["markdown"].read_text()
    assert (tmp_path / "cmp" / "seed-1" / "comparison.md").is_file()


def test_cli_rejects_bad_device_log(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "tools" / "compare.py"), "--demo", "--out",
                          str(tmp_path), "--device-log", "float"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: --device-log 'float'")
    assert "Traceback" not in out.stderr
    with pytest.raises(KvasirError, match="--seeds 0: use at least 1"):
        compare.run_comparison(tmp_path, TrainConfig(demo=True), seeds=0)


def test_small_comparison_end_to_end(tmp_path, make_dataset_dir):
    """Train one tiny float run and its equal-budget control, convert it twice, measure every
    artifact."""
    data = make_dataset_dir({"a": 12, "b": 12, "c": 12})
    names = ["float-keras", "float", "ptq-int8", "float-ft-keras"]
    base = base_config({"data_dir": str(data), "image_size": 32, "alpha": 0.35, "epochs": 1,
                        "batch_size": 16, "progress": 0})
    result = compare.run_comparison(tmp_path / "cmp", base, variants=names, qat={"epochs": 1})
    rows = result["rows"]
    assert list(rows) == names
    n_test = rows["float-keras"]["n"]
    assert n_test > 0 and all(r["n"] == n_test for r in rows.values())
    # The float32 TFLite file computes what the Keras model computes.
    assert rows["float"]["agreement"] >= 90.0
    # int8 is roughly a quarter of float32 (weights dominate even a tiny model).
    assert rows["ptq-int8"]["size_kb"] < 0.4 * rows["float"]["size_kb"]
    assert result["headline"]["int8_size_ratio"] == pytest.approx(
        rows["ptq-int8"]["size_kb"] / rows["float"]["size_kb"])
    for name in ("float", "ptq-int8"):
        r = rows[name]
        assert 0 < r["latency_1t_ms"] <= r["latency_1t_p90_ms"]
        assert r["peak_memory_mb"] > 0
    for key in ("accuracy", "macro_sensitivity", "macro_specificity"):
        assert all(0.0 <= r[key] <= 1.0 for r in rows.values())
        assert all(r["ci"][key][0] <= r[key] <= r["ci"][key][1] for r in rows.values())
    # The agreement interval is Wilson's on the n test images, by hand (z = 1.96).
    p, z = rows["float"]["agreement"] / 100.0, 1.959964
    centre = (p + z * z / (2 * n_test)) / (1 + z * z / n_test)
    half = z * np.sqrt(p * (1 - p) / n_test + z * z / (4 * n_test ** 2)) / (1 + z * z / n_test)
    assert rows["float"]["ci"]["agreement"] == pytest.approx([100 * (centre - half), 100 * (centre + half)],
                                                             abs=1e-3)
    assert rows["ptq-int8"]["labels"] == rows["float-keras"]["labels"]
    md = result["files"]["markdown"].read_text()
    # The equal-budget control: the float model trained on as plain float training, same split.
    ft = rundir.read_config(tmp_path / "cmp" / "runs" / "float-ft")
    assert ft["mode"] == "float" and Path(ft["init_from"]) == tmp_path / "cmp" / "runs" / "float"
    assert rows["float-ft-keras"]["labels"] == rows["float-keras"]["labels"]
    assert "float-ft: 2 epochs (1 + 1" in md
    lo, hi = rows["ptq-int8"]["ci"]["accuracy"]
    assert f"| PTQ int8 | {rows['ptq-int8']['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] |" in md
    # Calibration: each row's figures, T fitted on val (the int8 file's own), plots and section.
    from kvasir_tf import confidence
    for name, r in rows.items():
        c = r["confidence"]
        assert c["raw"]["ece"] == pytest.approx(
            confidence.ece(np.asarray(r["probabilities"]), r["labels"]), abs=1e-6)
        assert c["temperature"] > 0 and "scaled" in c
    assert rows["ptq-int8"]["confidence"]["floor"] == pytest.approx(
        json.loads((tmp_path / "cmp" / "models" / "ptq-int8.json").read_text())["output"]["scale"] / 2)
    assert "## Confidence: calibration and selective prediction" in md
    assert "| PTQ int8 - float (Keras) | PTQ int8 vs its float model |" in md
    for png in ("risk_coverage.png", "reliability_float_vs_int8.png", "reliability_ptq-int8.png"):
        assert (tmp_path / "cmp" / png).stat().st_size > 10_000
    doc = json.loads(result["files"]["json"].read_text())
    assert "probabilities" not in doc["rows"]["ptq-int8"] and "confidence" in doc["rows"]["ptq-int8"]
    # A second call reuses the run and the files instead of training again.
    before = (tmp_path / "cmp" / "models" / "ptq-int8.tflite").stat().st_mtime_ns
    again = compare.run_comparison(tmp_path / "cmp", base, variants=names, qat={"epochs": 1},
                                   latency_runs=50)
    assert (tmp_path / "cmp" / "models" / "ptq-int8.tflite").stat().st_mtime_ns == before
    assert np.isclose(again["rows"]["ptq-int8"]["accuracy"], rows["ptq-int8"]["accuracy"])


def test_finished_run_is_reused_only_with_the_same_settings(tmp_path):
    import dataclasses
    run = tmp_path / "runs" / "float"
    config = base_config({"mode": "float", "demo": True, "out": str(run), "epochs": 3})
    assert not rundir.reusable(run, config)                     # nothing there yet
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.keras").write_bytes(b"x")
    (run / "test_metrics.json").write_text("{}")
    stored = dataclasses.asdict(config) | {"out": "elsewhere", "progress": 0}   # bookkeeping differs
    (run / "config.json").write_text(json.dumps(stored))
    assert rundir.reusable(run, config)
    with pytest.raises(KvasirError, match=r"other settings \{'epochs': \(3, 4\)\}"):
        rundir.reusable(run, dataclasses.replace(config, epochs=4))


def _weights(run_dir):
    from kvasir_tf.model_io import load_model
    return load_model(rundir.checkpoint_path(run_dir)).get_weights()


def test_runs_trained_side_by_side_equal_runs_trained_one_after_another(tmp_path, make_dataset_dir):
    """--jobs 2: float and SGT train at once, the control waits for float; every run ends with the
    same weights and test figures as when trained in one process, and its output is in its log."""
    from kvasir_tf.compare.runs import run_configs, train_runs
    data = make_dataset_dir({"a": 10, "b": 10})
    base = base_config({"data_dir": str(data), "image_size": 32, "alpha": 0.35, "epochs": 1,
                        "batch_size": 8, "progress": 0})
    modes = ["float", "sgt", "float-ft"]
    one = train_runs(run_configs(tmp_path / "one", modes, base, qat={"epochs": 1}))
    two = train_runs(run_configs(tmp_path / "two", modes, base, qat={"epochs": 1}), jobs=2,
                     out_dir=tmp_path / "two")
    for mode in modes:
        for a, b in zip(_weights(one[mode]), _weights(two[mode])):
            np.testing.assert_array_equal(a, b)
        metrics = [json.loads((r[mode] / rundir.TEST_METRICS).read_text())["accuracy"] for r in (one, two)]
        assert metrics[0] == metrics[1]
        assert f"accuracy {metrics[1]:.4f}" in layout.log_path(tmp_path / "two", mode).read_text()
    assert Path(rundir.read_config(two["float-ft"])["init_from"]) == two["float"]


def test_a_run_starts_only_after_the_run_it_fine_tunes_and_the_costliest_first(tmp_path):
    from kvasir_tf.compare.runs import ready_runs, run_configs
    base = base_config({"data_dir": str(tmp_path), "epochs": 10})
    configs = run_configs(tmp_path / "cmp", ["float", "sgt", "qat", "pact-qat", "sgt-pact-qat", "float-ft"],
                          base, qat={"epochs": 6})
    todo = dict(configs)
    assert ready_runs(list(todo), todo, configs, set()) == ["sgt", "float"]      # SGT costs 2.3 float epochs
    # SGT done, float still training: only SGT's fine-tuning may start, however cheap float's are
    assert ready_runs(["qat", "pact-qat", "sgt-pact-qat", "float-ft"], todo, configs, {"sgt"}) == ["sgt-pact-qat"]
    assert ready_runs(["qat", "pact-qat", "float-ft"], todo, configs, {"sgt", "float"}) == ["qat", "pact-qat",
                                                                                        "float-ft"]
    # a parent reused from an earlier comparison (not in todo) does not hold its children back
    rest = {m: todo[m] for m in ("qat", "sgt-pact-qat")}
    assert ready_runs(list(rest), rest, configs, set()) == ["sgt-pact-qat", "qat"]


def test_a_run_failing_in_its_worker_is_a_one_line_error_naming_its_log(tmp_path):
    from kvasir_tf.compare.runs import run_configs, train_runs
    base = base_config({"data_dir": str(tmp_path / "missing"), "image_size": 32, "alpha": 0.35,
                        "epochs": 1, "progress": 0})
    with pytest.raises(KvasirError, match=r"training (float|sgt) failed: .*missing.*logs/(float|sgt)\.log"):
        train_runs(run_configs(tmp_path / "cmp", ["float", "sgt"], base), jobs=2, out_dir=tmp_path)


def test_stage_estimate_learns_training_rate_and_uses_seconds_for_the_rest(monkeypatch, capsys):
    clock = [0.0]
    monkeypatch.setattr(compare_runs.time, "monotonic", lambda: clock[0])
    st = compare_runs.Stages([("train a", 10, None), ("train b", 20, None), ("train c", 30, None),
                              ("convert", 2, 12.0)], parallel=2)
    st.start("train a")
    st.start("train b")                       # side by side with a
    assert st.seconds_left() is None          # no training rate yet
    clock[0] = 100.0
    assert st.finish("train a") == 100.0      # 10 s per unit and job learned
    # b has 100 s left, c 300 s: two at a time, c alone sets the time (not 400 / 2); then converting
    assert st.seconds_left() == pytest.approx(300.0 + 2 * 12.0)
    st.start("train c")
    clock[0] = 150.0
    assert st.seconds_left() == pytest.approx(250.0 + 24.0)
    clock[0] = 240.0
    st.finish("train b")                      # 240 s for 20 units: the rate follows (340 s for 30 units)
    assert st.seconds_left() == pytest.approx(30 * 340.0 / 30 - 140.0 + 24.0)
    clock[0] = 400.0
    st.finish("train c")
    st.start("convert")
    assert st.seconds_left() == pytest.approx(24.0)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[compare 1/4] train a (elapsed 0m00s, estimate after the first stage)"
    assert out[2] == "[compare 3/4] train c (elapsed 1m40s, about 5m24s left)"
    assert out[-1] == "[compare 4/4] convert (elapsed 6m40s, about 0m24s left)"


def test_cli_success_path_with_qat_flags_and_models(tmp_path, make_dataset_dir, capsys):
    """kvasir-compare as a user types it: --qat-epochs/--qat-lr reach the QAT run only, --models
    picks the rows, and the report files it names exist."""
    data = make_dataset_dir({"a": 10, "b": 10})
    out = tmp_path / "cmp"
    rc = compare.main(["--data-dir", str(data), "--image-size", "32", "--alpha", "0.35", "--epochs", "1",
                       "--batch-size", "8", "--lr", "2e-3", "--progress", "0", "--qat-epochs", "2",
                       "--qat-lr", "1e-4", "--models", "float-keras,qat-keras,qat-int8",
                       "--latency-runs", "50", "--out", str(out)])
    printed, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads((out / "comparison.json").read_text())
    assert list(doc["rows"]) == ["float-keras", "qat-keras", "qat-int8"]
    fl, qat = (rundir.read_config(out / "runs" / m) for m in ("float", "qat"))
    assert (fl["epochs"], fl["lr"]) == (1, 2e-3) and fl["init_from"] is None
    assert (qat["epochs"], qat["lr"], qat["mode"]) == (2, 1e-4, "qat")
    assert Path(qat["init_from"]) == out / "runs" / "float"
    written = [Path(line.split(" ", 1)[1]) for line in printed.splitlines() if line.startswith("wrote ")]
    assert out / "comparison.md" in written and all(p.is_file() for p in written)
    assert {out / "confidence.json", out / "risk_coverage.png", out / "reliability_qat-int8.png"} <= set(written)
    # an unknown row is a one-line error before anything trains
    rc = compare.main(["--data-dir", str(data), "--models", "nope", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "nope" in err and err.count("\n") == 1
    assert not (tmp_path / "bad" / "runs").exists()


def test_only_the_layout_spells_the_comparison_folders_names():
    """Every comparison file name is spelled in kvasir_tf/compare/layout.py alone (docstrings aside):
    a renamed file cannot leave a reader looking for the old name."""
    import ast
    names = (layout.MARKDOWN, layout.JSON, layout.ACCURACY_VS_SIZE, layout.ACCURACY_VS_LATENCY,
             layout.ALPHAS_JSON, layout.CONFIDENCE_JSON, layout.RISK_COVERAGE, layout.RELIABILITY_PREFIX,
             layout.SEED_DIR.format(""))
    owner = REPO / "kvasir_tf" / "compare" / "layout.py"
    spelled = []
    for path in sorted((REPO / "kvasir_tf").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and any(name in node.value for name in names)):
                spelled.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value[:60]!r}")
    assert spelled and all(s.startswith(str(owner.relative_to(REPO))) for s in spelled), spelled
