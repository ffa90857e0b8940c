"""Classification metrics reported by training, evaluation and conversion.

The paper reports accuracy plus one-vs-rest sensitivity and specificity; everything here is
derived from one sklearn confusion matrix so the numbers can never disagree with each other.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import f1_score, matthews_corrcoef

from kvasir_tf.errors import KvasirError


def _to_labels(y_prob_or_pred, num_classes: int) -> np.ndarray:
    """Accept class indices [N] or probabilities/scores [N, C] so callers need no argmax."""
    arr = np.asarray(y_prob_or_pred)
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise KvasirError(
                f"predictions have {arr.shape[1]} columns but there are {num_classes} class names; "
                "pass the class_names the model was trained with")
        return np.argmax(arr, axis=1).astype(np.int64)
    if arr.ndim != 1:
        raise KvasirError(f"predictions must be [N] labels or [N, C] probabilities, got shape {arr.shape}")
    return arr.astype(np.int64)


def _safe_div(num: float, den: float) -> float:
    """0/0 -> 0.0 (a class absent from the test set), matching sklearn's zero_division=0."""
    return float(num) / float(den) if den else 0.0


def classification_report(y_true, y_prob_or_pred, class_names) -> dict:
    """Accuracy, one-vs-rest sensitivity/specificity (per class and macro), macro F1, MCC, confusion matrix.

    Rows of ``confusion_matrix`` are true classes, columns predicted classes.
    """
    class_names = [str(c) for c in class_names]
    k = len(class_names)
    if k < 2:
        raise KvasirError("classification_report needs at least 2 class names")
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    y_pred = _to_labels(y_prob_or_pred, k)
    if y_true.shape != y_pred.shape:
        raise KvasirError(f"y_true has {y_true.size} labels but there are {y_pred.size} predictions")
    if y_true.size == 0:
        raise KvasirError("no samples to evaluate: the test split is empty; use a larger dataset")
    for name, arr in (("y_true", y_true), ("predictions", y_pred)):
        if arr.min() < 0 or arr.max() >= k:
            raise KvasirError(f"{name} contains labels outside 0..{k - 1} for {k} class names")

    labels = list(range(k))
    cm = _sk_confusion_matrix(y_true, y_pred, labels=labels)
    total = cm.sum()
    per_class = {}
    for i, name in enumerate(class_names):
        tp = cm[i, i]
        fn = cm[i, :].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = total - tp - fn - fp
        precision = _safe_div(tp, tp + fp)
        sensitivity = _safe_div(tp, tp + fn)
        per_class[name] = {
            "sensitivity": sensitivity,
            "specificity": _safe_div(tn, tn + fp),
            "precision": precision,
            "f1": _safe_div(2 * precision * sensitivity, precision + sensitivity),
            "support": int(tp + fn),
            "tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn),
        }
    present = [i for i in labels if cm[i, :].sum() > 0]
    return {
        "n": int(total),
        "class_names": class_names,
        "accuracy": _safe_div(np.trace(cm), total),
        # Macro averages run over the classes present in y_true: a class with no test image
        # (e.g. an empty Kvasir v2 folder) has no sensitivity to average, only a 0/0.
        "macro_sensitivity": float(np.mean([per_class[class_names[i]]["sensitivity"] for i in present])),
        "macro_specificity": float(np.mean([per_class[class_names[i]]["specificity"] for i in present])),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "macro_classes": [class_names[i] for i in present],
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "per_class": per_class,
        "confusion_matrix": cm.astype(int).tolist(),
    }


def format_report(report: dict) -> str:
    """A fixed-width table for terminals and logs."""
    names = report["class_names"]
    width = max(12, max(len(n) for n in names) + 2)
    lines = [f"{'class':<{width}}{'sens':>8}{'spec':>8}{'prec':>8}{'f1':>8}{'support':>9}"]
    for name in names:
        c = report["per_class"][name]
        lines.append(f"{name:<{width}}{c['sensitivity']:>8.3f}{c['specificity']:>8.3f}"
                     f"{c['precision']:>8.3f}{c['f1']:>8.3f}{c['support']:>9d}")
    lines.append(f"{'macro':<{width}}{report['macro_sensitivity']:>8.3f}{report['macro_specificity']:>8.3f}"
                 f"{'':>8}{report['macro_f1']:>8.3f}{report['n']:>9d}")
    lines.append(f"accuracy {report['accuracy']:.4f}   MCC {report['mcc']:.4f}   n={report['n']}")
    return "\n".join(lines)


def save_report_json(report: dict, path) -> Path:
    """Write the report as JSON (what test_metrics.json holds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def save_confusion_matrix_png(report: dict, path) -> Path:
    """Render the confusion matrix with counts, rows = true class, for the run directory."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cm = np.asarray(report["confusion_matrix"])
    names = report["class_names"]
    size = max(4.0, 0.7 * len(names) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ConfusionMatrixDisplay(cm, display_labels=names).plot(
            ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45, values_format="d")
        ax.set_title(f"accuracy {report['accuracy']:.3f}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
