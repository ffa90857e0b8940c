"""PNG figures a clinician can read: image | one overlay per model, with the prediction and the mask.

Overlays draw the normalised map (kvasir_tf.explain.normalize) with matplotlib's ``jet`` colormap
over the image; the expert/lesion mask, when known, is a white outline. ``grid`` shows one method
for every model; ``panel`` is the paper's Fig. 2 layout: image, then the vanilla saliency of each
Keras model and the gradient-free map of each .tflite.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OVERLAY_ALPHA = 0.5
CELL_INCHES = 1.9
DPI = 110
GRID_PER_CLASS = 3
PANEL_IMAGES = 4
PANEL_MODELS = 6


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def pick_images(study, per_class=GRID_PER_CLASS) -> list:
    """Up to ``per_class`` indices per label, preferring images with a mask."""
    data = study.data
    order = sorted(range(len(data.images)), key=lambda i: data.masks[i] is None or not data.masks[i].any())
    seen, keep = {}, []
    for i in order:
        y = int(data.labels[i])
        if seen.get(y, 0) < per_class:
            seen[y] = seen.get(y, 0) + 1
            keep.append(i)
    return sorted(keep)


def _short(name: str, limit=18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _cell(ax, image, saliency=None, mask=None, title=None):
    ax.imshow(image)
    if saliency is not None:
        ax.imshow(saliency, cmap="jet", alpha=OVERLAY_ALPHA, vmin=0.0, vmax=1.0)
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def _pred_title(study, name, i) -> str:
    probs = study.probs[name][i]
    c = int(probs.argmax())
    cls = study.data.class_names[c] if c < len(study.data.class_names) else str(c)
    return f"{_short(name)}\n{_short(cls, 14)} {probs[c]:.2f}"


def _image_title(study, i) -> str:
    y = int(study.data.labels[i])
    truth = study.data.class_names[y] if y >= 0 else "?"
    return f"{_short(Path(study.data.names[i]).stem, 14)}\ntrue: {_short(truth, 14)}"


def _figure(rows, cols, columns_title=None):
    plt = _plt()
    fig, axes = plt.subplots(rows, cols, figsize=(CELL_INCHES * cols, CELL_INCHES * rows + 0.4),
                             squeeze=False)
    if columns_title:
        fig.suptitle(columns_title, fontsize=9)
    return plt, fig, axes


def grid(study, method, out_path, per_class=GRID_PER_CLASS) -> Path | None:
    """image | overlay of ``method`` for every model that has it; one row per picked image."""
    names = [n for n in study.models if (n, method) in study.maps]
    if not names:
        return None
    rows = pick_images(study, per_class)
    plt, fig, axes = _figure(len(rows), len(names) + 1,
                             f"{method}: map of the true class (white: lesion mask); title: prediction, confidence")
    for r, i in enumerate(rows):
        mask = study.data.masks[i]
        _cell(axes[r, 0], study.data.images[i], mask=mask, title=_image_title(study, i))
        for c, name in enumerate(names, start=1):
            _cell(axes[r, c], study.data.images[i], study.maps[(name, method)][i], mask,
                  _pred_title(study, name, i))
    return _save(plt, fig, out_path)


def panel_columns(study) -> list:
    """(model, method) columns of the Fig. 2 panel."""
    cols = []
    grad = next((m for m in ("saliency", "smoothgrad", "integrated-gradients", "gradcam++")
                 if m in study.config.methods), None)
    pert = next((m for m in ("occlusion", "rise") if m in study.config.methods), None)
    for name, ref in study.models.items():
        method = grad if ref.kind == "keras" else pert
        if method and (name, method) in study.maps:
            cols.append((name, method))
    return cols[:PANEL_MODELS]


def panel(study, out_path, n_images=PANEL_IMAGES) -> Path | None:
    """Fig. 2-style panel: image (mask outlined) | per model its map, on images with a mask first."""
    cols = panel_columns(study)
    if not cols:
        return None
    rows = pick_images(study, per_class=n_images)[:n_images]
    plt, fig, axes = _figure(len(rows), len(cols) + 1, "Saliency per model (Keras: gradient; int8: gradient-free)")
    for r, i in enumerate(rows):
        _cell(axes[r, 0], study.data.images[i], mask=study.data.masks[i], title=_image_title(study, i))
        for c, (name, method) in enumerate(cols, start=1):
            _cell(axes[r, c], study.data.images[i], study.maps[(name, method)][i], study.data.masks[i],
                  f"{_short(name)}\n{method}" if r == 0 else None)
    return _save(plt, fig, out_path)


def _save(plt, fig, out_path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_path, dpi=DPI)
    plt.close(fig)
    return out_path


def faithfulness_plot(study, out_path, method=None) -> Path | None:
    """Mean deletion and insertion curves of every model for one method (default: the first
    gradient-free one, which every model has)."""
    methods = [m for _, m in study.faith]
    method = method or next((m for m in ("occlusion", "rise") if m in methods), methods[0] if methods else None)
    if method is None:
        return None
    plt = _plt()
    fig, (ax_d, ax_i) = plt.subplots(1, 2, figsize=(9, 3.4))
    for (name, m), rows in study.faith.items():
        if not rows or m != method:
            continue
        x = np.linspace(0, 1, len(rows[0]["deletion_curve"]))
        ax_d.plot(x, np.mean([r["deletion_curve"] for r in rows], 0), label=f"{name} {method}", lw=1)
        ax_i.plot(x, np.mean([r["insertion_curve"] for r in rows], 0), lw=1)
    ax_d.set(title="deletion (lower is more faithful)", xlabel="share of pixels removed", ylabel="p(class)")
    ax_i.set(title="insertion (higher is more faithful)", xlabel="share of pixels restored")
    fig.legend(loc="center right", fontsize=6)
    fig.subplots_adjust(right=0.7)
    return _save(plt, fig, out_path)
