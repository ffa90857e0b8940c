"""The run directory: its layout, atomic JSON, loading a run, and when a run may be resumed or reused.

    runs/NAME/
      config.json              every setting of the run (kvasir_tf.config.TrainConfig)
      split.json               the train/val/test manifest (kvasir_tf.data.split)
      checkpoints/last.keras   model after the last completed epoch
      checkpoints/best.keras   model with the best monitored value so far
      checkpoints/interrupted.keras   weights at a Ctrl-C
      checkpoints/resume/      tf.train.Checkpoint of model + optimizer + epoch (--resume)
      checkpoints/state.json   completed epochs, best epoch and value
      history.csv, tb/         per-epoch logs
      alphas.csv, alphas.png   PACT runs: every layer's alpha per epoch (epoch 0 = its start)
      test_metrics.json, confusion_matrix.png   the best model on the test split
      export/                  converted artifacts (tools/convert.py)

This module is the only place that spells these names.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from kvasir_tf.data.split import MANIFEST_NAME
from kvasir_tf.errors import DataError, KvasirError

CONFIG = "config.json"
SPLIT = MANIFEST_NAME
CKPT_DIR = "checkpoints"
RESUME_DIR = "resume"
LAST, BEST, INTERRUPTED = "last.keras", "best.keras", "interrupted.keras"
STATE = "state.json"
HISTORY = "history.csv"
TENSORBOARD = "tb"
TEST_METRICS = "test_metrics.json"
CONFUSION_PNG = "confusion_matrix.png"
ALPHAS_CSV = "alphas.csv"        # PACT alpha of every layer per epoch (callbacks.AlphaLog)
ALPHAS_PNG = "alphas.png"
ALPHA_TB = "alpha"               # TensorBoard scalars alpha/<layer> under tb/alpha
EXPORT_DIR = "export"
CHECKPOINTS = {"best": BEST, "last": LAST}

# TrainConfig field roles (``field(metadata={"role": ...})``), read by the checks below:
LEARN = "learn"        # changes what the run learns: fixed for --resume, must match for reuse
SCHEDULE = "schedule"  # how long / how fast: may change on --resume, must match for reuse
ORIGIN = "origin"      # where the weights came from: fixed for --resume, a path, so not compared
PLACE = "place"        # paths, logging, devices, bookkeeping: never compared


def config_path(run_dir) -> Path:
    return Path(run_dir) / CONFIG


def checkpoint_path(run_dir, name: str = BEST) -> Path:
    return Path(run_dir) / CKPT_DIR / name


def resume_dir(run_dir) -> Path:
    return Path(run_dir) / CKPT_DIR / RESUME_DIR


def state_path(run_dir) -> Path:
    return Path(run_dir) / CKPT_DIR / STATE


def export_path(run_dir, mode: str) -> Path:
    return Path(run_dir) / EXPORT_DIR / f"model_{mode}.tflite"


def read_json(path, what: str) -> dict:
    """A JSON file, or a one-line error naming it and what it should have been."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KvasirError(f"{path} not found: expected {what}") from None
    except ValueError as exc:
        raise KvasirError(f"{path} is not valid JSON ({exc}); restore it or start a new run") from None


def write_json_atomic(path, doc) -> Path:
    """Write then rename, so a kill never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def read_config(run_dir) -> dict:
    return read_json(config_path(run_dir), "a run directory written by `python -m kvasir_tf.train`")


def read_state(run_dir) -> dict:
    path = state_path(run_dir)
    return json.loads(path.read_text()) if path.is_file() else {}


def is_run_dir(path) -> bool:
    return (Path(path) / CONFIG).is_file() and (Path(path) / SPLIT).is_file()


def is_finished(run_dir) -> bool:
    """Trained and evaluated: the best checkpoint and the test metrics exist."""
    return (checkpoint_path(run_dir).is_file() and (Path(run_dir) / TEST_METRICS).is_file()
            and config_path(run_dir).is_file())


def run_dir_of(model_path) -> Path | None:
    """runs/NAME for runs/NAME/checkpoints/X.keras (or runs/NAME/export/X.tflite)."""
    model_path = Path(model_path)
    if model_path.is_dir():
        return model_path if is_run_dir(model_path) else None
    for d in (model_path.parent, model_path.parent.parent):
        if is_run_dir(d):
            return d
    return None


def load_run(run_dir, *, checkpoint: str = "best", data_dir=None):
    """(model, config dict, split) of a run directory, for evaluation/conversion tools.

    ``checkpoint``: "best" or "last"; ``data_dir`` relocates the dataset of the split.
    """
    from kvasir_tf.data.split import load_manifest
    from kvasir_tf.model_io import load_model
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    path = checkpoint_path(run_dir, CHECKPOINTS.get(checkpoint, checkpoint))
    if not path.is_file():
        raise KvasirError(f"{path} not found: the run has no {checkpoint} checkpoint yet; train or "
                          "resume it, or pass checkpoint='last'")
    split = load_manifest(run_dir, data_dir=data_dir)
    return load_model(path), config, split


@dataclass
class Source:
    """A loaded Keras model with what is known about where it came from."""

    model: object
    path: Path
    kind: str                      # "run" or "keras"
    class_names: list | None = None
    split: object = None           # kvasir_tf.data.split.Split of the run, if any
    config: dict = field(default_factory=dict)


def load_source(source, data_dir=None, *, trust_model: bool = False) -> Source:
    """A run directory, or a Keras file (with its run's config and split when it sits in one)."""
    from kvasir_tf.data.split import load_manifest
    from kvasir_tf.model_io import load_keras_file
    path = Path(source)
    if not path.exists():
        raise KvasirError(f"{path} not found; pass a run directory (runs/NAME) or a .keras model file")
    if path.is_dir():
        if not checkpoint_path(path).is_file():
            raise KvasirError(f"{path} is not a run directory (no {CKPT_DIR}/{BEST}); "
                              "pass runs/NAME written by `python -m kvasir_tf.train`")
        model, config, split = load_run(path, data_dir=data_dir)
        kind = "run"
    else:
        model, config, split, kind = load_keras_file(path, trust_model=trust_model), {}, None, "keras"
        run = run_dir_of(path)
        if run is not None:
            config = read_config(run)
            try:
                split = load_manifest(run, data_dir=data_dir)
            except DataError:
                split = None
    names = config.get("class_names") or (list(split.class_names) if split is not None else None)
    return Source(model, path, kind, [str(n) for n in names] if names else None, split, dict(config))


def _fields(config, roles):
    return [f.name for f in dataclasses.fields(config) if f.metadata.get("role", LEARN) in roles]


def check_resume(run_dir, stored, config):
    """--resume may change only the schedule and where things are; anything else is a new run."""
    diff = [n for n in _fields(config, (LEARN, ORIGIN)) if getattr(stored, n) != getattr(config, n)]
    if diff:
        raise KvasirError(f"--resume {run_dir}: cannot change "
                          f"{', '.join('--' + d.replace('_', '-') for d in diff)} of a run; drop those "
                          "flags or start a new run with --out")
    if not (resume_dir(run_dir) / "checkpoint").is_file():
        raise KvasirError(f"--resume {run_dir}: no completed epoch to resume from "
                          f"({resume_dir(run_dir)} is empty); start it again without --resume")


def reusable(run_dir, config) -> bool:
    """A finished run trained with the same settings; a different one is an error, not a silent reuse."""
    if not is_finished(run_dir):
        return False
    stored = read_config(run_dir)
    relu6 = config.spec.activation != "pact"  # then PACT-only fields (absent from older runs) do not count
    plain = not config.spec.guided  # nor do fields of the saliency-guided step
    fields = [f for f in dataclasses.fields(config) if f.name in _fields(config, (LEARN, SCHEDULE))
              and not (relu6 and f.metadata.get("pact_only"))
              and not (plain and f.metadata.get("guided_only"))]
    # a field newer than the run: the run had the behaviour its default keeps
    was = {f.name: stored.get(f.name, f.default) for f in fields}
    differ = {n: (v, getattr(config, n)) for n, v in was.items() if v != getattr(config, n)}
    if differ:
        raise KvasirError(f"{run_dir} was trained with other settings {differ}; pass a new --out "
                          "or --retrain")
    return True
