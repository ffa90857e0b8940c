"""A comparison folder's layout: the only place its names are spelled (as :mod:`kvasir_tf.rundir`
is for a run directory). Imports nothing of the comparison, so :mod:`kvasir_tf.explain` can read
a comparison folder through it.

    OUT/
      runs/<run>/                 one run directory per training mode (kvasir_tf.rundir's layout)
      models/<row>.tflite         the converted rows, each with its sidecar and labels
      logs/<run>.log              --jobs: each training process's output
      seed-<S>/                   --seeds N: each further seed's whole comparison, same layout
      comparison.md, comparison.json, accuracy_vs_size.png, accuracy_vs_latency.png
      alphas.json                 the PACT section
      confidence.json, reliability_<row>.png, reliability_float_vs_int8.png, risk_coverage.png
      report.html                 all of it on one page, with the saliency study's tables and figures
"""
from __future__ import annotations

import json
from pathlib import Path

RUNS, MODELS, LOGS = "runs", "models", "logs"
SEED_DIR = "seed-{}"
MARKDOWN, JSON = "comparison.md", "comparison.json"
ACCURACY_VS_SIZE, ACCURACY_VS_LATENCY = "accuracy_vs_size.png", "accuracy_vs_latency.png"
ALPHAS_JSON = "alphas.json"
CONFIDENCE_JSON = "confidence.json"
RELIABILITY_PREFIX = "reliability_"
RELIABILITY_OVERLAY = f"{RELIABILITY_PREFIX}float_vs_int8.png"
RISK_COVERAGE = "risk_coverage.png"
REPORT_HTML = "report.html"
KERAS_SUFFIX = "-keras"         # a run's Keras row: "<run>-keras" (kvasir_tf.compare.rows)


def run_dir(out, run: str) -> Path:
    return Path(out) / RUNS / run


def model_path(out, row: str) -> Path:
    """Where a converted row's .tflite goes."""
    return Path(out) / MODELS / f"{row}.tflite"


def log_path(out, run: str) -> Path:
    return Path(out) / LOGS / f"{run}.log"


def seed_dir(out, seed: int) -> Path:
    return Path(out) / SEED_DIR.format(seed)


def reliability_png(out, row: str) -> Path:
    return Path(out) / f"{RELIABILITY_PREFIX}{row}.png"


def reliability_pngs(out) -> list:
    """Every row's reliability diagram (not the float-vs-int8 overlay), sorted."""
    return sorted(p for p in Path(out).glob(f"{RELIABILITY_PREFIX}*.png") if p.name != RELIABILITY_OVERLAY)


def is_comparison(folder) -> bool:
    return (Path(folder) / RUNS).is_dir() or (Path(folder) / MODELS).is_dir()


def runs(folder) -> list:
    """The run directories of a comparison folder, sorted by name."""
    return sorted(p for p in (Path(folder) / RUNS).glob("*") if p.is_dir())


def tflite_models(folder) -> dict:
    """{row name: path} of the converted rows, sorted by name."""
    return {p.stem: p for p in sorted((Path(folder) / MODELS).glob("*.tflite"))}


def keras_row(run: str) -> str:
    return run + KERAS_SUFFIX


def read_comparison(folder) -> dict:
    """comparison.json of ``folder`` ({} when there is none or it is not a JSON object)."""
    path = Path(folder) / JSON
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def describe() -> str:
    """What a comparison folder holds, for error messages."""
    return f"{RUNS}/*/ and {MODELS}/*.tflite (a comparison folder, kvasir-compare --out)"
