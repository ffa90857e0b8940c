"""The comparison's confidence section on synthetic rows: table, paired differences, plots."""
import json

import numpy as np
import pytest

from kvasir_tf import confidence
from kvasir_tf.compare import confidence_section as cr
from kvasir_tf.compare import layout


def _row(name, fmt, probs, y, label):
    floor = confidence.prob_floor(1 / 256 if fmt == "int8" else None)
    fitted = confidence.calibrate(probs[:150], y[:150], floor=floor, target=0.8)
    rep = confidence.report(probs[150:], y[150:], floor=floor, fitted=fitted, n_resamples=200)
    return {"name": name, "label": label, "format": fmt, "labels": y[150:].tolist(),
            "probabilities": probs[150:].tolist(), "confidence": rep}


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, size=(400, 3))
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    y = (rng.random(400)[:, None] > np.cumsum(p, 1)).sum(1)
    hot = np.exp(3 * logits)
    hot /= hot.sum(1, keepdims=True)
    grid = np.round(hot * 256) / 256                   # an int8 output's grid
    return {"float-keras": _row("float-keras", "keras", p, y, "float (Keras)"),
            "ptq-int8": _row("ptq-int8", "int8", grid, y, "PTQ int8")}


def test_section_table_pairs_and_plots(rows, tmp_path):
    md = tmp_path / "comparison.md"
    md.write_text("# comparison\n\nearlier text\n")
    out = cr.write_confidence_report(tmp_path, rows, md)
    text = md.read_text()
    assert text.startswith("# comparison") and cr.SECTION_TITLE in text
    assert "float (Keras)" in text and "PTQ int8" in text and "10 equal-mass bins" in text
    # The hot PTQ row is worse calibrated raw, and the paired interval sees it.
    doc = json.loads((tmp_path / layout.CONFIDENCE_JSON).read_text())
    assert sorted(doc["rows"]) == ["float-keras", "ptq-int8"]
    (pair,) = doc["paired"]
    assert (pair["a"], pair["b"]) == ("float-keras", "ptq-int8")
    assert pair["raw"]["ece"]["interval"][0] > 0
    assert "*" in text.split("Paired differences")[1]
    names = sorted(p.name for p in out["plots"])
    assert names == sorted(["reliability_float-keras.png", "reliability_ptq-int8.png",
                            layout.RELIABILITY_OVERLAY, layout.RISK_COVERAGE])
    import matplotlib.image as mpimg
    for p in out["plots"]:
        img = mpimg.imread(p)
        assert img.shape[0] > 300 and img.shape[1] > 300 and img[..., :3].std() > 0.05
    # Written twice: the section is replaced, not repeated.
    cr.write_confidence_report(tmp_path, rows, md)
    assert md.read_text().count(cr.SECTION_TITLE) == 1


def test_no_row_with_confidence_writes_nothing(tmp_path):
    assert cr.write_confidence_report(tmp_path, {"x": {"accuracy": 0.5}}) is None
    assert not list(tmp_path.iterdir())
