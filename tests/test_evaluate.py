"""Evaluation runs the actual artifact: .tflite through ai-edge-litert agrees with the Keras model."""
import json
import shutil

import numpy as np
import pytest

from kvasir_tf import evaluate as E
from kvasir_tf.artifact import sha256_file
from kvasir_tf.errors import KvasirError
from tests import convert_fixtures as F


def _images(subset):
    from kvasir_tf.data.pipeline import load_images
    return load_images(F.split().paths(subset), F.SIZE)


def test_int8_tflite_agrees_with_keras_top1():
    sp = F.split()
    # the test split: images neither training nor int8 calibration saw
    tfl = E.evaluate(F.converted("int8"), F.run_dir(), subset="test", batch_size=8)
    ker = E.evaluate(F.run_dir() / "checkpoints" / "best.keras", F.run_dir(), subset="test")
    assert tfl["kind"] == "tflite" and ker["kind"] == "keras" and tfl["n"] == len(sp.test) >= 20
    assert ker["accuracy"] >= 0.9          # it learned, so agreeing is not two models guessing alike
    agree = np.mean(np.array(tfl["predictions"]) == np.array(ker["predictions"]))
    assert agree >= 0.95
    # the report's numbers are consistent with its own predictions
    y = sp.labels("test")
    assert tfl["labels"] == y.tolist()
    assert tfl["accuracy"] == pytest.approx(np.mean(np.array(tfl["predictions"]) == y))
    cm = np.array(tfl["confusion_matrix"])
    assert cm.sum() == len(y) and np.trace(cm) == int(round(tfl["accuracy"] * len(y)))


def test_predict_tflite_matches_keras_probabilities():
    x = _images("train")[:7]
    keras = F.trained_model().predict(x.astype(np.float32), verbose=0)
    assert np.abs(E.predict(F.converted("float"), x) - keras).max() < 1e-4
    scale = json.loads(F.converted("int8").with_suffix(".json").read_text())["output"]["scale"]
    steps = np.abs(E.predict(F.converted("int8"), x) - keras).max() / scale
    assert steps <= F.INT8_OUTPUT_STEPS, steps


def test_batched_equals_one_by_one():
    x = _images("train")[:7]
    p = E.Predictor(F.converted("int8"))
    batched = p.predict(x, batch_size=4)      # 4 + 3 (padded) images
    assert p.impl.batch == 4
    single = np.concatenate([p.predict(im[None], batch_size=1) for im in x])
    assert np.array_equal(batched, single)


def test_latency_stats():
    r = E.latency(F.converted("int8"), threads=1, runs=12)
    assert r["runs"] == 12 and r["threads"] == 1
    assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]


def test_cli_writes_report_table_and_png(tmp_path, capsys):
    rc = E.main([str(F.converted("int8")), "--split", "test", "--out", str(tmp_path / "ev")])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads((tmp_path / "ev" / E.REPORT_NAME).read_text())
    assert report["n"] == len(F.split().test) and report["subset"] == "test"
    assert (tmp_path / "ev" / E.CM_PNG_NAME).read_bytes()[:4] == b"\x89PNG"
    table = (tmp_path / "ev" / E.TABLE_NAME).read_text()
    for name in F.CLASSES:
        assert name in table and name in out
    assert "confusion matrix" in out and f"MCC {report['mcc']:.4f}" in out


def test_cli_missing_model(tmp_path, capsys):
    rc = E.main([str(tmp_path / "none.tflite")])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_cli_sidecar_of_another_file(tmp_path, capsys):
    src = F.converted("int8")
    dst = tmp_path / "m.tflite"
    shutil.copy(src, dst)
    side = json.loads(src.with_suffix(".json").read_text())
    side["sha256"] = sha256_file(F.converted("float"))
    dst.with_suffix(".json").write_text(json.dumps(side))
    rc = E.main([str(dst), "--run", str(F.run_dir())])
    assert rc == 2 and "sha256 differs" in capsys.readouterr().err


def test_cli_unknown_split_without_run(tmp_path, capsys):
    dst = tmp_path / "m.tflite"
    shutil.copy(F.converted("float"), dst)   # no sidecar, so no way to find the run
    rc = E.main([str(dst)])
    assert rc == 2 and "--run" in capsys.readouterr().err
    assert E.main([str(dst), "--run", str(F.run_dir())]) == 0


def test_class_names_must_match_split(tmp_path):
    dst = tmp_path / "m.tflite"
    shutil.copy(F.converted("int8"), dst)
    side = json.loads(F.converted("int8").with_suffix(".json").read_text())
    side["class_names"] = ["x", "y", "z"]
    dst.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(KvasirError, match="trained on classes"):
        E.evaluate(dst, F.run_dir())


def test_cli_latency_only(capsys):
    assert E.main([str(F.converted("int8")), "--latency", "--runs", "5", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "median" in out and "5 runs, 2 thread(s)" in out
    assert E.main([str(F.run_dir() / "checkpoints" / "best.keras"), "--latency"]) == 2
    assert "convert" in capsys.readouterr().err


def test_evaluate_reports_calibration_fitted_on_val_and_the_sidecars_temperature(tmp_path):
    from kvasir_tf import confidence, runtime
    from kvasir_tf.artifact import sidecar_path_for
    src = F.converted("int8")
    ker = E.evaluate(F.run_dir() / "checkpoints" / "best.keras", F.run_dir(), subset="test")
    c = ker["confidence"]
    assert c["fitted_from"] == "fitted on val here" and c["bins"] == confidence.ECE_BINS
    probs, y = np.asarray(ker["probabilities"]), np.asarray(ker["labels"])
    assert c["raw"]["ece"] == pytest.approx(confidence.ece(probs, y), abs=1e-6)
    assert c["raw"]["intervals"]["nll"][0] <= c["raw"]["nll"] <= c["raw"]["intervals"]["nll"][1]
    assert c["scaled"]["brier"] == pytest.approx(
        confidence.brier(confidence.apply_temperature(probs, c["temperature"]), y), abs=1e-6)
    # kvasir-convert fitted the int8 file's own temperature on the run's val images.
    side = json.loads(sidecar_path_for(src).read_text())
    m = runtime.TFLiteModel(src)
    val = E.evaluate(src, F.run_dir(), subset="val")
    assert val["confidence"]["fitted_from"] == "sidecar"
    want = confidence.calibrate(val["probabilities"], val["labels"], floor=confidence.floor_of(m.sidecar))
    assert side["output"]["temperature"] == pytest.approx(want["temperature"], rel=1e-4)
    assert side["output"]["abstain_below"] == want["abstain_below"]
    assert side["output"]["calibration"]["n"] == len(F.split().val)
    assert any(n.startswith("temperature ") for n in side["notes"])
    # An int8 file carrying another temperature and threshold: evaluate and the runtime apply them.
    dst = tmp_path / "model.tflite"
    shutil.copy(src, dst)
    fitted = {"temperature": 2.0, "abstain_below": 0.6, "target_accuracy": 0.9, "fitted_on": "val"}
    sidecar_path_for(dst).write_text(json.dumps(confidence.into_sidecar(side, fitted)))
    rep = E.evaluate(dst, F.run_dir(), subset="test")
    assert rep["confidence"]["fitted_from"] == "sidecar" and rep["confidence"]["temperature"] == 2.0
    x = _images("test")
    got, decisions = runtime.TFLiteModel(dst).classify(x)
    run, (scale, zp) = runtime.raw_runner(dst)
    q = np.concatenate([run(runtime.quantize_input(im[None], runtime.TFLiteModel(dst).input_detail()))
                        for im in x])
    want = confidence.device_probabilities(q, scale, zp, 2.0)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.array_equal(decisions, confidence.decide(want, 0.6))
    assert rep["confidence"]["selective"]["n_kept"] == int(np.sum(decisions != confidence.UNCERTAIN))
