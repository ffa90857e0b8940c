"""Score any model on a split's subset: the one path every test-set figure comes through.

Training's final report and ``kvasir-evaluate`` (Keras or .tflite) both call :func:`score`, so a
run's own test metrics and an artifact's are computed from the same images the same way.
"""
from __future__ import annotations

import numpy as np

from kvasir_tf.errors import KvasirError

DECODE_CHUNK = 256   # images decoded at a time, so a large test set never sits in memory twice


def score(predict, split, subset="test", *, image_size: int, class_names=None, num_classes=None,
          batch_size=32, mask_overlays=False, name="the model") -> dict:
    """Metrics of ``predict`` (uint8 pixels [N,S,S,3], batch size -> probabilities) on a subset.

    ``mask_overlays`` must be the run's own setting, so images are preprocessed as in training.
    Keyword-only options with defaults: training and evaluate each pass what they know.
    """
    from kvasir_tf.data.pipeline import load_images
    from kvasir_tf.metrics import classification_report
    names = list(class_names or split.class_names)
    if names != list(split.class_names):
        raise KvasirError(f"{name} was trained on classes {names} but the split has "
                          f"{list(split.class_names)}; evaluate with the run's own split.json")
    if num_classes is not None and num_classes != len(names):
        raise KvasirError(f"{name} has {num_classes} outputs but the split has {len(names)} classes")
    paths, y_true = split.paths(subset), split.labels(subset)
    if len(paths) == 0:
        raise KvasirError(f"the {subset} split of {split.root} is empty; use a larger dataset")
    chunk = max(batch_size, DECODE_CHUNK)
    probs = np.concatenate([predict(load_images(paths[i:i + chunk], image_size, mask_overlays), batch_size)
                            for i in range(0, len(paths), chunk)])
    report = classification_report(y_true, probs, names)
    report.update(subset=subset, image_size=image_size, data_root=str(split.root),
                  predictions=[int(v) for v in probs.argmax(1)], labels=[int(v) for v in y_true],
                  probabilities=np.round(probs.astype(np.float64), 7).tolist())
    return report


def calibrate_on_val(model, split, *, batch_size=32, mask_overlays=False) -> dict | None:
    """:func:`kvasir_tf.confidence.calibrate` of ``model`` (a Predictor, TFLiteModel or
    KerasModel: predict, image_size, class_names, num_classes, sidecar) on ``split``'s
    VALIDATION images; None when the split has none (or is not a Split)."""
    from kvasir_tf import confidence
    from kvasir_tf.data.split import Split
    if not isinstance(split, Split) or not split.subset("val"):
        return None
    val = score(model.predict, split, "val", image_size=model.image_size, class_names=model.class_names,
                num_classes=model.num_classes, batch_size=batch_size, mask_overlays=mask_overlays)
    return confidence.calibrate(val["probabilities"], val["labels"],
                                floor=confidence.floor_of(model.sidecar))


def keras_predict(model):
    """``predict`` for :func:`score` from an in-memory Keras model."""
    def predict(images, batch_size):
        return np.asarray(model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0),
                          np.float32)
    return predict
