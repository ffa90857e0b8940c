"""Float, PTQ and QAT models side by side on one dataset, one seed and one test split.

Trains (or reuses) one run per training mode, converts each to the artifacts a user would
deploy, evaluates every artifact on the same test images (the first run's split manifest),
times the .tflite files on this host, then has :mod:`~kvasir_tf.compare.report` and the PACT and
confidence sections write the report (file names: :mod:`~kvasir_tf.compare.layout`).

Which runs are trained (the finetune and scratch recipes, the equal-budget control rows)
is :mod:`kvasir_tf.compare.runs`; the intervals and paired tests are :mod:`kvasir_tf.stats`.

``seeds=N`` repeats everything with seeds ``seed .. seed+N-1`` (each its own split and training;
the first in ``out_dir``, the others in their seed folder) and reports mean and standard
deviation per row beside the first seed's tables.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kvasir_tf import rundir
from kvasir_tf.compare import layout, report
from kvasir_tf.compare import rows as rows_lib
from kvasir_tf.compare.rows import ROWS
from kvasir_tf.compare.runs import (CONTROL_FROM, CONVERT_SECONDS, MEASURE_SECONDS, Stages, budget_note,
                                    run_configs, train_cost, train_runs)
from kvasir_tf.config import TrainConfig
from kvasir_tf.errors import KvasirError

REFERENCE = rows_lib.REFERENCE.name     # "agreement" column: % same top-1 as this row
LATENCY_THREADS = (1, 2)
LATENCY_RUNS = 50
_MEMORY_PROBE = r"""
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter

def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS, after the imports
base = status("VmRSS")
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
for _ in range(3):
    it.invoke()
print((status("VmHWM") - base) / 1024.0)
"""


def peak_memory_mb(tflite_path) -> float:
    """Peak resident memory (MB) added by loading and running a .tflite, in a fresh process.

    Linux only (/proc): the peak is reset after the imports, so only the model's share counts.
    """
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(tflite_path)],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise KvasirError(f"memory probe failed on {tflite_path}: {out.stderr.strip().splitlines()[-1:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _progress(total, desc):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


# ----------------------------------------------------------------------------- artifacts
def convert_variants(runs: dict, variants, out_dir, *, num_calibration=None, force=False) -> dict:
    """Artifact path per variant: the best Keras checkpoint, or a verified .tflite in the
    comparison folder ``out_dir``."""
    from kvasir_tf.artifact import read_sidecar, sha256_file
    from kvasir_tf.convert import convert
    paths = {}
    for v in variants:
        run_dir = runs[v.train_mode]
        if v.convert_mode is None:
            paths[v.name] = rundir.checkpoint_path(run_dir)
            continue
        out = layout.model_path(out_dir, v.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        side = read_sidecar(out) if out.is_file() else None
        if (not force and side is not None and side.get("sha256") == sha256_file(out)
                and Path(side.get("source", "")).resolve() == run_dir.resolve()):
            print(f"[compare] reusing {out}")
        else:
            print(f"[compare] converting {run_dir.name} -> {out.name} ({v.convert_mode})")
            convert(run_dir, out, v.convert_mode, num_calibration=num_calibration, force=True,
                    allow_fewer=True, verbose=False, per_tensor=v.per_tensor)
        paths[v.name] = out
    return paths


def measure(variants, paths: dict, split, *, data_dir=None, latency_runs=LATENCY_RUNS,
            threads=LATENCY_THREADS, memory=True, mask_overlays=False) -> dict:
    """Metrics, size, host latency and memory of every artifact, on ``split``'s test images
    (preprocessed with the runs' own ``mask_overlays``)."""
    from kvasir_tf import evaluate as ev
    rows = {}
    bar = _progress(len(variants), "measuring")
    try:
        for v in variants:
            path = Path(paths[v.name])
            bar.set_postfix_str(v.name)
            rep = ev.evaluate(path, split, "test", data_dir=data_dir, mask_overlays=mask_overlays)
            row = {k: rep[k] for k in ("accuracy", "macro_sensitivity", "macro_specificity",
                                       "macro_f1", "mcc", "n")}
            row.update(name=v.name, label=v.label, train_mode=v.train_mode,
                       format=v.convert_mode or "keras", path=str(path),
                       size_kb=path.stat().st_size / 1024.0,
                       predictions=rep["predictions"], labels=rep["labels"], per_class=rep["per_class"],
                       confusion_matrix=rep["confusion_matrix"], probabilities=rep["probabilities"],
                       confidence=rep["confidence"])
            if v.convert_mode is not None:
                for t in threads:
                    lat = ev.latency(path, threads=t, runs=latency_runs)
                    row[f"latency_{t}t_ms"] = lat["median_ms"]
                    row[f"latency_{t}t_p90_ms"] = lat["p90_ms"]
                if memory:
                    row["peak_memory_mb"] = peak_memory_mb(path)
            rows[v.name] = row
            bar.update(1)
    finally:
        bar.close()
    _agreement(rows)
    _intervals(rows, split, data_dir)
    return rows


def _agreement(rows: dict):
    """% same top-1 as the float Keras model, and as the Keras model the artifact came from,
    each with its 95 % Wilson interval in ``row["ci"]``."""
    from kvasir_tf.stats import wilson

    def agree(row, key, other):
        same = np.asarray(row["predictions"]) == np.asarray(other["predictions"])
        row[key] = 100.0 * float(np.mean(same))
        row.setdefault("ci", {})[key] = [100.0 * v for v in wilson(int(same.sum()), same.size)]
    ref = rows.get(REFERENCE)
    for name, row in rows.items():
        if ref is not None:
            agree(row, "agreement", ref)
        keras = rows_lib.keras_row_of(row["train_mode"])
        src = None if keras is None else rows.get(keras.name)
        if src is not None and row["format"] != "keras":
            agree(row, "agreement_source", src)


def test_groups(split, data_dir=None):
    """One group id per test image: its source image for a patch dataset, else None (independent)."""
    from kvasir_tf.data.split import as_split
    return as_split(split, data_dir).groups("test")


def _intervals(rows: dict, split, data_dir=None):
    """95 % intervals of accuracy (Wilson) and the macro figures and MCC (bootstrap over test
    images, or over source images for a grouped split) into each row's ``ci``."""
    from kvasir_tf.stats import row_intervals
    groups = test_groups(split, data_dir)
    for row in rows.values():
        row.setdefault("ci", {}).update(row_intervals(row, len(row["per_class"]), groups=groups))
        row["ci_resampled"] = "source images" if groups else "test images"
        row["test_groups"] = groups


def merge_device_logs(rows: dict, device_logs: dict) -> dict:
    """Add on-device latency columns from firmware serial logs or benchmark_model output.

    ``device_logs``: {variant name: path to a recorded log}. The format is recognised by content.
    """
    from kvasir_tf import device_logs as dl
    for name, log in (device_logs or {}).items():
        if name not in rows:
            raise KvasirError(f"--device-log {name}=...: no such row; use one of {', '.join(rows)}")
        text = Path(log).read_text(errors="replace")
        if dl.SERIAL_TAG + " " in text:
            s = dl.parse_serial(text)
            if not s["frames"]:
                raise KvasirError(f"{log}: no KVASIR frame lines; capture the board's serial output again")
            rows[name]["device_latency_ms"] = s["latency_median_ms"]
            rows[name]["device_latency_p90_ms"] = s["latency_p90_ms"]
            rows[name]["device_source"] = f"serial ({s['frames']} frames)"
        else:
            b = dl.parse_benchmark_model(text)
            rows[name]["device_latency_ms"] = b.get("inference_median_ms", b["inference_avg_ms"])
            if "peak_memory_mb" in b:
                rows[name]["device_peak_memory_mb"] = b["peak_memory_mb"]
            rows[name]["device_source"] = "benchmark_model"
    return rows


def select_variants(names=None, recipe="finetune"):
    """The rows to produce: all (the control rows only in the finetune recipe), or ``names``."""
    if not names:
        return [v for v in ROWS if recipe == "finetune" or v.train_mode not in CONTROL_FROM]
    return rows_lib.select(names)


@dataclass(frozen=True)
class ComparisonPlan:
    """What one comparison trains, converts and measures, beyond the settings every run shares.

    ``qat``: {field: value} for the QAT fine-tuning runs and their controls; ``variants``: row
    names (None = all for the recipe); ``seeds``: repeats with seeds base.seed .. base.seed +
    seeds - 1 (latency and memory are measured on the first only: they do not depend on the
    seed); ``jobs``: runs trained at once, each in its own process
    (:func:`kvasir_tf.compare.runs.train_runs`); ``device_logs``: {row: recorded log}.
    """

    qat: dict | None = None
    variants: tuple | None = None
    recipe: str = "finetune"
    seeds: int = 1
    retrain: bool = False
    force_convert: bool = False
    num_calibration: int | None = None
    latency_runs: int = LATENCY_RUNS
    device_logs: dict | None = None
    jobs: int = 1


def written(files: dict) -> list:
    """Every file a comparison wrote (its ``files``), for the "wrote" lines."""
    conf = files.get("confidence") or {}
    return [files["markdown"], files["json"], *files["plots"],
            *([files["alphas"]] if files.get("alphas") else []),
            *([conf["json"], *conf["plots"]] if conf else [])]


def run_comparison(out_dir, base: TrainConfig, plan: ComparisonPlan | None = None, **options) -> dict:
    """Train/reuse, convert, measure and report; returns {"rows", "headline", "files", "repeats"}.

    ``base``: the settings every run shares; ``plan`` (or its fields as ``options``, e.g.
    ``variants=[...], seeds=2``): the rest, see :class:`ComparisonPlan`.
    """
    plan = plan if plan is not None else ComparisonPlan(**options)
    seeds = plan.seeds
    if int(seeds) < 1:
        raise KvasirError(f"--seeds {seeds}: use at least 1")
    variants = select_variants(plan.variants, plan.recipe)
    out_dir = Path(out_dir)
    repeats, contexts = [], []
    for i in range(int(seeds)):
        seed = base.seed + i
        if seeds > 1:
            print(f"[compare] seed {seed} ({i + 1} of {seeds})", flush=True)
        rows, context = _one_seed(out_dir if i == 0 else layout.seed_dir(out_dir, seed),
                                  dataclasses.replace(base, seed=seed), variants, plan,
                                  timed=i == 0)
        if i > 0:   # each repeat's own full report, beside its runs
            report.write_reports(rows, layout.seed_dir(out_dir, seed), context=context)
        repeats.append(rows)
        contexts.append(context)
    rows, context = repeats[0], contexts[0]
    merge_device_logs(rows, plan.device_logs)
    if seeds > 1:
        context["seeds"] = (f"{base.seed}..{base.seed + seeds - 1} "
                            f"(other seeds in {layout.SEED_DIR.format('S')}/)")
    files = report.write_reports(rows, out_dir, context=context, repeats=repeats)
    from kvasir_tf.compare.alpha_section import write_alpha_report
    files["alphas"] = write_alpha_report(out_dir, rows, files.get("markdown"))
    from kvasir_tf.compare.confidence_section import write_confidence_report
    files["confidence"] = write_confidence_report(out_dir, rows, files.get("markdown"))
    return {"rows": rows, "headline": report.headline(rows), "files": files, "repeats": repeats}


def _one_seed(out_dir, base: TrainConfig, variants, plan: ComparisonPlan, *, timed: bool):
    """(rows, context) of one seed: train/reuse, convert and measure; ``timed`` False skips the
    latency and memory measurements."""
    jobs = plan.jobs
    configs = run_configs(out_dir, {v.train_mode for v in variants}, base, qat=plan.qat,
                          recipe=plan.recipe)
    n_tflite = sum(1 for v in variants if v.convert_mode)
    stages = Stages([(f"train {m}", 0.0 if not plan.retrain and rundir.reusable(Path(c.out), c)
                      else train_cost(c), None) for m, c in configs.items()]
                    + [("convert", n_tflite, CONVERT_SECONDS), ("measure", len(variants), MEASURE_SECONDS)],
                    parallel=jobs)
    runs = train_runs(configs, retrain=plan.retrain, stages=stages, jobs=jobs, out_dir=out_dir)
    stages.start("convert")
    paths = convert_variants(runs, variants, out_dir, num_calibration=plan.num_calibration,
                             force=plan.force_convert)
    stages.finish()
    first = runs[variants[0].train_mode]
    cfg = rundir.read_config(first)
    stages.start("measure")
    timing = {} if timed else {"threads": (), "memory": False}
    rows = measure(variants, paths, first, latency_runs=plan.latency_runs if timed else LATENCY_RUNS,
                   mask_overlays=bool(cfg.get("mask_overlays")), **timing)
    stages.finish()
    context = {"data": cfg.get("data_dir") or "demo", "image_size": cfg.get("image_size"),
               "width multiplier": cfg.get("alpha"), "seed": cfg.get("seed"), "recipe": plan.recipe,
               "test images": next(iter(rows.values()))["n"],
               "intervals resampled over": next(iter(rows.values()))["ci_resampled"],
               "training budget": budget_note(configs, plan.recipe)}
    return rows, context
