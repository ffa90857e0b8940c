"""Saving and loading every kvasir_tf model (float, PACT, QAT-wrapped) as .keras or .h5.

Loading checks what the file is before Keras sees it, so a wrong file gets a one-line error
naming it (a .tflite, a zip that is not a model, a model built from layers we do not know).
Model files may come from elsewhere, and a Keras ``Lambda`` layer stores Python bytecode that
loading runs: ``.keras`` files load with ``safe_mode=True`` (Keras refuses the bytecode), and an
``.h5`` file, whose legacy loader has no such guard, is refused when it holds a Lambda layer
unless the caller trusts it (``--trust-model``).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import tensorflow as tf
import tensorflow_model_optimization as tfmot

from kvasir_tf.errors import KvasirError, first_line
from kvasir_tf.qat import custom_objects, normalize_wrappers
from kvasir_tf.file_types import HDF5_MAGIC, KERAS_ZIP_MAGIC, head as file_head, is_tflite_bytes
MODEL_SUFFIXES = (".keras", ".h5")
KERAS_ZIP_CONFIG = "config.json"     # the model config inside a .keras zip (not a run's config.json)


def save_model(model: tf.keras.Model, path) -> Path:
    """Save a float, PACT or QAT model (format from the suffix: .keras or .h5).

    The optimizer state goes along when the model is compiled; resumable runs keep their own
    ``tf.train.Checkpoint`` too."""
    path = Path(path)
    if path.suffix not in MODEL_SUFFIXES:
        raise KvasirError(f"cannot save model to {path}: use a .keras (or .h5) file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    normalize_wrappers(model)
    model.save(str(path))
    return path


TRUST_FLAG = "--trust-model"


def _layer_nodes(config):
    """Every ``{"class_name": ..., "config": ...}`` node of a stored Keras model config."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str) and "config" in node:
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def h5_lambda_layers(path) -> list:
    """Names of the Lambda layers in an .h5 model's stored config (no code is run to find them)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError:
        return []
    if raw is None:
        return []
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    return [(n.get("config") or {}).get("name", "?") for n in _layer_nodes(config)
            if n["class_name"] == "Lambda"]


def load_model(path, compile: bool = False, *, trust_model: bool = False) -> tf.keras.Model:
    """Load any model saved by :func:`save_model` (QAT wrappers need TF-MOT's quantize_scope).

    ``trust_model``: allow stored Python code (Lambda layers) to run; only for files you made."""
    path = Path(path)
    if not path.exists():
        raise KvasirError(f"model file {path} not found: pass a .keras file written by training "
                          f"(runs/NAME/checkpoints/best.keras)")
    if not trust_model and path.suffix != ".keras" and file_head(path).startswith(HDF5_MAGIC):
        lambdas = h5_lambda_layers(path)
        if lambdas:
            raise KvasirError(f"{path} holds Lambda layer(s) {', '.join(lambdas)} whose stored Python "
                              f"code would run on loading; pass {TRUST_FLAG} only if you made this file")
    try:
        with tfmot.quantization.keras.quantize_scope(custom_objects()):
            return tf.keras.models.load_model(str(path), custom_objects=custom_objects(),
                                              compile=compile, safe_mode=not trust_model)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        hint = (f"if it holds a Lambda layer you made, pass {TRUST_FLAG}" if "safe_mode" in str(exc)
                else "re-export it with kvasir_tf.model_io.save_model")
        raise KvasirError(f"cannot load model {path}: {first_line(exc)}; {hint}") from None


def load_keras_file(path, *, trust_model: bool = False) -> tf.keras.Model:
    """A model file from anywhere, with a clear error for every kind of wrong file."""
    path = Path(path)
    if not path.is_file():
        raise KvasirError(f"model file {path} not found; pass a run directory or a .keras file "
                          "(runs/NAME/checkpoints/best.keras)")
    head = file_head(path)
    if is_tflite_bytes(head):
        raise KvasirError(f"{path} is already a TFLite flatbuffer; pass the Keras model "
                          "(runs/NAME or runs/NAME/checkpoints/best.keras)")
    if not (head.startswith(KERAS_ZIP_MAGIC) or head.startswith(HDF5_MAGIC)):
        raise KvasirError(f"{path} is not a Keras model file (.keras zip or .h5); pass the "
                          "checkpoint written by training (runs/NAME/checkpoints/best.keras)")
    is_zip = head.startswith(KERAS_ZIP_MAGIC)
    if is_zip and KERAS_ZIP_CONFIG not in _zip_names(path):
        raise KvasirError(f"{path} is a zip file but not a Keras model (no config.json inside); "
                          "pass runs/NAME/checkpoints/best.keras")
    try:
        return load_model(path, trust_model=trust_model)
    except KvasirError:
        unknown = unknown_classes(path) if is_zip else []
        if unknown:
            raise KvasirError(f"{path} uses layer classes unknown to kvasir_tf ({', '.join(unknown)}); "
                              "save models built from kvasir_tf's own layers "
                              "(kvasir_tf.model.build_mobilenetv2) with kvasir_tf.model_io.save_model") from None
        raise


def _zip_names(path: Path) -> set:
    try:
        with zipfile.ZipFile(path) as z:
            return set(z.namelist())
    except zipfile.BadZipFile:
        return set()


def _known_class(name: str, registered: str, known: set) -> bool:
    return (name in known or registered in known or hasattr(tf.keras.layers, name)
            or hasattr(tf.keras, name) or tf.keras.utils.get_registered_object(registered) is not None
            or any(hasattr(m, name) for m in (tf.keras.initializers, tf.keras.regularizers,
                                               tf.keras.constraints)))


def unknown_classes(path: Path) -> list:
    """Layer class names in a .keras config that neither Keras nor kvasir_tf can build."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read(KERAS_ZIP_CONFIG))
    except (KeyError, ValueError, zipfile.BadZipFile):
        return []
    known = {"Functional", "Sequential", "Model"}
    with tfmot.quantization.keras.quantize_scope(custom_objects()) as scope:
        for objects in getattr(scope, "custom_objects", []):
            known |= set(objects)
    return sorted({n["class_name"] for n in _layer_nodes(config)
                   if not _known_class(n["class_name"], n.get("registered_name") or n["class_name"], known)})


def image_size_of(model) -> int:
    """The square input side of a classifier built by kvasir_tf.model.build_mobilenetv2."""
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
        raise KvasirError(f"model input shape {tuple(shape)} is not [B, S, S, 3]; "
                          "use a classifier built by kvasir_tf.model.build_mobilenetv2")
    return int(shape[1])
