"""metrics.py against values computed by hand on a 3-class confusion matrix."""
import json

import numpy as np
import pytest

from kvasir_tf import metrics
from kvasir_tf.errors import KvasirError

NAMES = ["a", "b", "c"]
# Confusion matrix (rows true, cols predicted):
#   a: [2, 1, 0]   b: [0, 1, 1]   c: [1, 0, 3]
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 2, 2, 2, 0, 2]


def test_confusion_matrix_and_accuracy():
    r = metrics.classification_report(Y_TRUE, Y_PRED, NAMES)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert r["n"] == 9
    assert r["accuracy"] == pytest.approx(6 / 9)


def test_one_vs_rest_sensitivity_specificity_by_hand():
    r = metrics.classification_report(Y_TRUE, Y_PRED, NAMES)
    pc = r["per_class"]
    # a: TP 2, FN 1, FP 1, TN 5; b: TP 1, FN 1, FP 1, TN 6; c: TP 3, FN 1, FP 1, TN 4
    assert (pc["a"]["tp"], pc["a"]["fn"], pc["a"]["fp"], pc["a"]["tn"]) == (2, 1, 1, 5)
    assert (pc["b"]["tp"], pc["b"]["fn"], pc["b"]["fp"], pc["b"]["tn"]) == (1, 1, 1, 6)
    assert (pc["c"]["tp"], pc["c"]["fn"], pc["c"]["fp"], pc["c"]["tn"]) == (3, 1, 1, 4)
    assert pc["a"]["sensitivity"] == pytest.approx(2 / 3)
    assert pc["a"]["specificity"] == pytest.approx(5 / 6)
    assert pc["b"]["sensitivity"] == pytest.approx(1 / 2)
    assert pc["b"]["specificity"] == pytest.approx(6 / 7)
    assert pc["c"]["sensitivity"] == pytest.approx(3 / 4)
    assert pc["c"]["specificity"] == pytest.approx(4 / 5)
    assert [pc[n]["support"] for n in NAMES] == [3, 2, 4]
    assert r["macro_sensitivity"] == pytest.approx(23 / 36)
    assert r["macro_specificity"] == pytest.approx(523 / 630)


def test_f1_and_mcc_by_hand():
    r = metrics.classification_report(Y_TRUE, Y_PRED, NAMES)
    # precision == recall per class here, so F1 == sensitivity
    assert r["per_class"]["b"]["f1"] == pytest.approx(1 / 2)
    assert r["macro_f1"] == pytest.approx(23 / 36)
    # Gorodkin's multiclass MCC: (c*s - sum p.t) / sqrt((s^2 - sum p^2)(s^2 - sum t^2))
    assert r["mcc"] == pytest.approx((6 * 9 - (9 + 4 + 16)) / (81 - 29))


def test_probabilities_give_the_same_report_as_labels():
    rng = np.random.default_rng(0)
    probs = rng.random((9, 3)) * 0.1
    probs[np.arange(9), Y_PRED] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    assert metrics.classification_report(Y_TRUE, probs, NAMES) == metrics.classification_report(
        Y_TRUE, Y_PRED, NAMES)


def test_perfect_and_absent_class():
    r = metrics.classification_report([0, 1, 0], [0, 1, 0], NAMES)
    assert r["accuracy"] == 1.0 and r["mcc"] == pytest.approx(1.0)
    # class c never occurs and is never predicted: sens 0 (0/0), spec 1
    assert r["per_class"]["c"]["sensitivity"] == 0.0
    assert r["per_class"]["c"]["specificity"] == 1.0
    # ... and is left out of the macro averages, so a perfect classifier scores 1.0
    assert r["macro_sensitivity"] == 1.0 and r["macro_specificity"] == 1.0 and r["macro_f1"] == 1.0
    assert r["macro_classes"] == ["a", "b"]


@pytest.mark.parametrize("y_true,y_pred,match", [
    ([0, 1], [0], "labels"),
    ([0, 3], [0, 1], "outside"),
    ([], [], "empty"),
    ([0, 1], np.zeros((2, 4)), "columns"),
])
def test_bad_input_raises_kvasir_error(y_true, y_pred, match):
    with pytest.raises(KvasirError, match=match):
        metrics.classification_report(y_true, y_pred, NAMES)


def test_format_and_files(tmp_path):
    r = metrics.classification_report(Y_TRUE, Y_PRED, NAMES)
    table = metrics.format_report(r)
    assert "0.667" in table.splitlines()[1]  # row a: sensitivity 2/3
    assert "accuracy 0.6667" in table
    j = metrics.save_report_json(r, tmp_path / "m.json")
    assert json.loads(j.read_text())["confusion_matrix"] == r["confusion_matrix"]
    png = metrics.save_confusion_matrix_png(r, tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
