"""`make demo` (kvasir_tf.demo) end to end on tiny settings: data, the paper's model trained and
converted, the report and the saliency summary, and a second run that reuses everything."""
import json
import re
from pathlib import Path

import pytest

from kvasir_tf import config as C
from kvasir_tf import demo
from kvasir_tf.explain.metrics import format_ci


@pytest.fixture
def tiny_demo(tmp_path, monkeypatch):
    """The demo's own code path with the demo data and budget made tiny (one process)."""
    from kvasir_tf.data import synthetic
    real_generate = synthetic.generate
    monkeypatch.setattr(synthetic, "ensure_demo_data",
                        lambda out_dir, **_: real_generate(Path(out_dir), per_class=6, size=40, seed=0))
    monkeypatch.setattr(C, "DEMO_DEFAULTS", {"image_size": 32, "alpha": 0.35, "batch_size": 8,
                                             "lr": 3e-3, "bn_momentum": 0.9, "progress": 0})
    monkeypatch.setattr(demo, "DEMO_EPOCHS", 2)
    monkeypatch.setattr(demo, "DEMO_WARMUP", 1)
    monkeypatch.setattr(demo, "DEMO_QAT", dict(demo.DEMO_QAT, epochs=1))
    monkeypatch.setattr(demo, "DEMO_JOBS", 1)
    monkeypatch.setattr(demo, "DEMO_SALIENCY_LIMIT", 1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_quick_demo_trains_converts_and_reports(tiny_demo, capsys):
    assert demo.main(["--out", "runs/demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "== 1/3 demo data" in out and "== 3/3 saliency maps and report" in out
    assert "48 generated images of 8 Kvasir v2 classes" in out      # 6 per class, counted on disk
    report = json.loads(next((tiny_demo / "runs/demo").glob("**/comparison.json")).read_text())
    assert list(report["rows"]) == list(demo.QUICK_MODELS)
    qat = C.TrainConfig.from_run(tiny_demo / "runs/demo/runs/sgt-pact-qat")
    assert (qat.mode, qat.epochs, qat.lr, qat.image_size, qat.warmup) == ("sgt-pact-qat", 1, 1e-3, 32, 0)
    assert Path(qat.init_from).name == "sgt"
    sgt = C.TrainConfig.from_run(tiny_demo / "runs/demo/runs/sgt")      # SGT from scratch: a plain epoch first
    assert (sgt.epochs, sgt.warmup) == (2, 1)
    assert "(the first 1 plain)" in out
    int8 = report["rows"]["sgt-pact-qat-int8"]
    assert int8["n"] == report["rows"]["sgt-keras"]["n"] > 0 and int8["size_kb"] > 0
    # It ends with a summary a person reads in a minute, the report's path last.
    summary = out.split("== 3/3 saliency maps and report\n", 1)[1].strip().splitlines()
    assert len(summary) <= 40 and summary[-1] == "report: runs/demo/report.html"
    assert (tiny_demo / "runs/demo/report.html").is_file() and not any(s.startswith("wrote ") for s in summary)
    screen = report["summary"]
    assert [r[0] for r in screen["rows"]] == ["SGT float (Keras)", "SGT-PACT-QAT int8 (ours)"]
    table = [line for line in summary if line.startswith(("SGT float (Keras)  ", "SGT-PACT-QAT int8 (ours)  "))]
    assert [re.split(r"\s{2,}", line) for line in table] == screen["rows"]
    assert f"verdict: {screen['verdict']}" in summary and "and SGT float (Keras)" in screen["verdict"]
    sal = next(s for s in summary if s.startswith("saliency (occlusion maps of test images with a lesion mask)"))
    study = json.loads((tiny_demo / "runs/demo/explain/saliency.json").read_text())["localisation"]
    for name, label in (("sgt-keras", "SGT float (Keras)"), ("sgt-pact-qat-int8", "SGT-PACT-QAT int8 (ours)")):
        p = study[name]["occlusion"]["pointing"]
        assert f"{label} {format_ci(p)} ({p['n']} images)" in sal, sal
    # report.html opens with what it is, the question and the headline, then the full tables
    from html import escape
    from kvasir_tf.compare.html import COMPARISON_TITLE
    page = (tiny_demo / "runs/demo/report.html").read_text()
    marks = [f"<title>{escape(COMPARISON_TITLE)}</title>", f"<h1>{escape(COMPARISON_TITLE)}</h1>",
             escape(screen["question"]), f"<td>{escape(screen['rows'][-1][1])}</td>", escape(screen["verdict"]),
             "the map&#x27;s peak lies on the lesion", "<h2>Every model", "<h2>Localisation"]
    at = [page.find(m) for m in marks]
    assert -1 not in at and at == sorted(at), list(zip(marks, at))
    assert "[compare] training " in out            # so its absence below means something
    # A second run reuses every finished run and artifact: nothing trains again.
    mtimes = {p: p.stat().st_mtime_ns for p in (tiny_demo / "runs/demo").glob("**/*.keras")}
    assert demo.main(["--out", "runs/demo", "--quick"]) == 0
    assert "[compare] training " not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_demo_models_are_the_comparison_rows_minus_the_skipped():
    from kvasir_tf.compare import select_variants
    names = demo.demo_models()
    assert not set(demo.DEMO_SKIPPED) & set(names)
    assert set(names) | set(demo.DEMO_SKIPPED) == {v.name for v in select_variants()}
    assert set(demo.QUICK_MODELS) <= set(names)
