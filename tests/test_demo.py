"""`make demo` (kvasir_tf.demo) end to end on tiny settings: data, the paper's model trained and
converted, the report and the saliency summary, and a second run that reuses everything."""
import json
import re
from pathlib import Path

import pytest

from kvasir_tf import config as C
from kvasir_tf import demo


@pytest.fixture
def tiny_demo(tmp_path, monkeypatch):
    """The demo's own code path with the demo data and budget made tiny (one process)."""
    from kvasir_tf.data import synthetic
    real_generate = synthetic.generate
    monkeypatch.setattr(synthetic, "ensure_demo_data",
                        lambda out_dir, **_: real_generate(Path(out_dir), per_class=6, size=40, seed=0))
    monkeypatch.setattr(C, "DEMO_DEFAULTS", {"image_size": 32, "alpha": 0.35, "batch_size": 8,
                                             "lr": 3e-3, "bn_momentum": 0.9, "progress": 0})
    monkeypatch.setattr(demo, "DEMO_EPOCHS", 1)
    monkeypatch.setattr(demo, "DEMO_QAT", {"epochs": 1, "lr": 1e-3})
    monkeypatch.setattr(demo, "DEMO_JOBS", 1)
    monkeypatch.setattr(demo, "DEMO_SALIENCY_LIMIT", 1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_quick_demo_trains_converts_and_reports(tiny_demo, capsys):
    assert demo.main(["--out", "runs/demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "== 1/3 demo data" in out and "== 3/3 report" in out
    # the data summary names every Kvasir v2 class, 6 images each
    from kvasir_tf.data.synthetic import KVASIR_V2_CLASSES
    assert all(re.search(rf"{c}\s+6\b", out) for c in KVASIR_V2_CLASSES), out[:2000]
    report = json.loads(next((tiny_demo / "runs/demo").glob("**/comparison.json")).read_text())
    assert list(report["rows"]) == list(demo.QUICK_MODELS)
    qat = C.TrainConfig.from_run(tiny_demo / "runs/demo/runs/sgt-pact-qat")
    assert (qat.mode, qat.epochs, qat.lr, qat.image_size) == ("sgt-pact-qat", 1, 1e-3, 32)
    assert Path(qat.init_from).name == "sgt"
    int8 = report["rows"]["sgt-pact-qat-int8"]
    assert int8["n"] == report["rows"]["sgt-keras"]["n"] > 0 and int8["size_kb"] > 0
    for line in out.splitlines():
        if line.startswith("wrote "):
            assert Path(line[len("wrote "):]).is_file(), line
    assert "Saliency (mean [95 % CI]):" in out and "not computed" not in out
    assert (tiny_demo / "runs/demo/report.html").is_file()
    assert "training " in out                      # so its absence below means something
    # A second run reuses every finished run and artifact: nothing trains again.
    mtimes = {p: p.stat().st_mtime_ns for p in (tiny_demo / "runs/demo").glob("**/*.keras")}
    assert demo.main(["--out", "runs/demo", "--quick"]) == 0
    assert "training " not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_demo_models_are_the_comparison_rows_minus_the_skipped():
    from kvasir_tf.compare import select_variants
    names = demo.demo_models()
    assert not set(demo.DEMO_SKIPPED) & set(names)
    assert set(names) | set(demo.DEMO_SKIPPED) == {v.name for v in select_variants()}
    assert set(demo.QUICK_MODELS) <= set(names)
