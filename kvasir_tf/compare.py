"""Float, PTQ and QAT models side by side on one dataset, one seed and one test split.

Trains (or reuses) one run per training mode, converts each to the artifacts a user would
deploy, evaluates every artifact on the same test images (the first run's split manifest),
times the .tflite files on this host and writes ``comparison.md``/``.json`` and two plots.

The usual recipe (``recipe="finetune"``): ``float`` and ``sgt`` train from scratch; ``qat`` and
``pact-qat`` fine-tune from the float run, ``sgt-pact-qat`` from the SGT run (``--init-from``).
``recipe="scratch"`` trains every mode from scratch.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import kvasir_tf
from kvasir_tf import report, rundir
from kvasir_tf.config import TrainConfig, add_train_args, base_config, given_settings
from kvasir_tf.errors import KvasirError, cli


@dataclass(frozen=True)
class Variant:
    """One row: the model a training mode produced, deployed as ``convert_mode`` (None = Keras)."""

    name: str
    train_mode: str
    convert_mode: str | None
    label: str
    per_tensor: bool = False       # int8 with one scale per tensor (smaller file; see convert.py)


VARIANTS = (
    Variant("float-keras", "float", None, "float (Keras)"),
    Variant("float", "float", "float", "float32 TFLite"),
    Variant("float-fp16", "float", "fp16", "float16 TFLite"),
    Variant("float-dynamic", "float", "dynamic", "dynamic-range TFLite"),
    Variant("ptq-int8", "float", "int8", "PTQ int8"),
    Variant("ptq-int8-per-tensor", "float", "int8", "PTQ int8 per-tensor", per_tensor=True),
    Variant("sgt-keras", "sgt", None, "SGT float (Keras)"),
    Variant("sgt", "sgt", "float", "SGT float32 TFLite"),
    Variant("qat-keras", "qat", None, "TF-MOT QAT (Keras)"),
    Variant("qat-int8", "qat", "int8", "TF-MOT QAT int8"),
    Variant("pact-qat-keras", "pact-qat", None, "PACT-QAT (Keras)"),
    Variant("pact-qat-int8", "pact-qat", "int8", "PACT-QAT int8"),
    Variant("sgt-pact-qat-keras", "sgt-pact-qat", None, "SGT-PACT-QAT (Keras)"),
    Variant("sgt-pact-qat-int8", "sgt-pact-qat", "int8", "SGT-PACT-QAT int8 (ours)"),
)
TRAIN_ORDER = ("float", "sgt", "qat", "pact-qat", "sgt-pact-qat")
FINETUNE_FROM = {"qat": "float", "pact-qat": "float", "sgt-pact-qat": "sgt"}
REFERENCE = "float-keras"            # "agreement" column: % same top-1 as this row
LATENCY_THREADS = (1, 2)
LATENCY_RUNS = 50
RECIPES = ("finetune", "scratch")
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


# ----------------------------------------------------------------------------- training
def run_configs(out_dir, modes, base: TrainConfig, *, qat=None, recipe="finetune") -> dict:
    """TrainConfig per training mode (in training order): ``base`` with the mode, its run folder
    and, for QAT runs fine-tuned from a float/SGT run, ``qat`` ({field: value}) on top."""
    if recipe not in RECIPES:
        raise KvasirError(f"unknown recipe {recipe!r}; use one of {', '.join(RECIPES)}")
    needed = set(modes)
    if recipe == "finetune":
        needed |= {FINETUNE_FROM[m] for m in modes if m in FINETUNE_FROM}
    configs = {}
    for mode in (m for m in TRAIN_ORDER if m in needed):
        run_dir = Path(out_dir) / "runs" / mode
        cfg = dataclasses.replace(base, mode=mode, out=str(run_dir))
        if recipe == "finetune" and mode in FINETUNE_FROM:
            cfg = dataclasses.replace(cfg, init_from=configs[FINETUNE_FROM[mode]].out, **(qat or {}))
        configs[mode] = cfg
    return configs


# Rough relative cost of one training epoch (a plain float epoch = 1), for the time estimate only:
# the saliency-guided step runs two forward and two backward passes (tools/benchmark_train.py:
# SGT-PACT-QAT 2.28x a QAT step at 96 px); QAT adds fake quants.
GUIDED_COST, QAT_COST = 2.3, 1.4
CONVERT_COST, MEASURE_COST = 2.0, 1.0   # per artifact, in the same units


class Stages:
    """One progress line per stage, with the time so far and an estimate of what remains.

    Stage costs are relative units; seconds per unit are learned from the stages already done,
    so the estimate sharpens as the run goes on."""

    def __init__(self, stages):
        self.names = [n for n, _ in stages]
        self.costs = [float(c) for _, c in stages]
        self.t0 = time.monotonic()
        self.done_cost = self.done_time = 0.0
        self._started = None

    def start(self, name):
        i = self.names.index(name)
        elapsed = time.monotonic() - self.t0
        left = sum(self.costs[i:])
        if self.done_cost > 0:
            eta = f"about {_minutes(left * self.done_time / self.done_cost)} left"
        else:
            eta = "estimate after the first stage"
        print(f"[compare {i + 1}/{len(self.names)}] {name} (elapsed {_minutes(elapsed)}, {eta})", flush=True)
        self._started = (i, time.monotonic())

    def finish(self):
        i, t = self._started
        self.done_cost += self.costs[i]
        self.done_time += time.monotonic() - t


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def train_cost(config: TrainConfig) -> float:
    spec = config.spec
    return config.epochs * (GUIDED_COST if spec.guided else 1.0) * (QAT_COST if spec.qat else 1.0)


def train_runs(configs: dict, *, retrain=False, stages=None) -> dict:
    """Run directory per training mode, training only what is missing or --retrain."""
    from kvasir_tf import train as train_lib
    runs = {}
    for mode, config in configs.items():
        run_dir = Path(config.out)
        if stages:
            stages.start(f"train {mode}")
        if not retrain and rundir.reusable(run_dir, config):
            print(f"[compare] reusing {run_dir}")
        else:
            if run_dir.exists() and retrain:
                shutil.rmtree(run_dir)
            print(f"[compare] training {mode} -> {run_dir}"
                  + (f" (from {config.init_from})" if config.init_from else ""))
            train_lib.train(config)
        if stages:
            stages.finish()
        runs[mode] = run_dir
    _check_same_split(runs)
    return runs


def _check_same_split(runs: dict):
    """Every model must be judged on the same test images."""
    from kvasir_tf.data.split import load_manifest
    ref_mode, ref = None, None
    for mode, run_dir in runs.items():
        sp = load_manifest(run_dir)
        key = (list(sp.class_names), [p for p, _ in sp.test])
        if ref is None:
            ref_mode, ref = mode, key
        elif key != ref:
            raise KvasirError(f"runs {ref_mode} and {mode} have different test splits; train them with "
                              "the same data and --seed (or --retrain)")


# ----------------------------------------------------------------------------- artifacts
def convert_variants(runs: dict, variants, models_dir, *, num_calibration=None, force=False) -> dict:
    """Artifact path per variant: the best Keras checkpoint, or a verified .tflite."""
    from kvasir_tf.artifact import read_sidecar, sha256_file
    from kvasir_tf.convert import convert
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for v in variants:
        run_dir = runs[v.train_mode]
        if v.convert_mode is None:
            paths[v.name] = rundir.checkpoint_path(run_dir)
            continue
        out = models_dir / f"{v.name}.tflite"
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
                       predictions=rep["predictions"], per_class=rep["per_class"],
                       confusion_matrix=rep["confusion_matrix"])
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
    return rows


def _agreement(rows: dict):
    """% same top-1 as the float Keras model, and as the Keras model the artifact came from."""
    def agree(a, b):
        return 100.0 * float(np.mean(np.asarray(a) == np.asarray(b)))
    ref = rows.get(REFERENCE)
    for name, row in rows.items():
        if ref is not None:
            row["agreement"] = agree(row["predictions"], ref["predictions"])
        src = rows.get(f"{row['train_mode']}-keras")
        if src is not None and row["format"] != "keras":
            row["agreement_source"] = agree(row["predictions"], src["predictions"])


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


def select_variants(names=None):
    if not names:
        return list(VARIANTS)
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KvasirError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def run_comparison(out_dir, base: TrainConfig, *, qat=None, variants=None, recipe="finetune",
                   retrain=False, force_convert=False, num_calibration=None,
                   latency_runs=LATENCY_RUNS, device_logs=None) -> dict:
    """Train/reuse, convert, measure and report; returns {"rows", "headline", "files"}.

    ``base``: the settings every run shares; ``qat``: {field: value} for the QAT fine-tuning runs.
    """
    variants = select_variants(variants)
    out_dir = Path(out_dir)
    configs = run_configs(out_dir, {v.train_mode for v in variants}, base, qat=qat, recipe=recipe)
    n_tflite = sum(1 for v in variants if v.convert_mode)
    stages = Stages([(f"train {m}", 0.0 if not retrain and rundir.reusable(Path(c.out), c) else train_cost(c))
                     for m, c in configs.items()]
                    + [("convert", CONVERT_COST * n_tflite), ("measure", MEASURE_COST * len(variants))])
    runs = train_runs(configs, retrain=retrain, stages=stages)
    stages.start("convert")
    paths = convert_variants(runs, variants, out_dir / "models", num_calibration=num_calibration,
                             force=force_convert)
    stages.finish()
    first = runs[variants[0].train_mode]
    cfg = rundir.read_config(first)
    stages.start("measure")
    rows = measure(variants, paths, first, latency_runs=latency_runs,
                   mask_overlays=bool(cfg.get("mask_overlays")))
    stages.finish()
    merge_device_logs(rows, device_logs)
    context = {"data": cfg.get("data_dir") or "demo", "image_size": cfg.get("image_size"),
               "width multiplier": cfg.get("alpha"), "seed": cfg.get("seed"), "recipe": recipe,
               "test images": next(iter(rows.values()))["n"]}
    files = report.write_reports(rows, out_dir, context=context)
    from kvasir_tf.alpha_report import write_alpha_report  # the PACT section (issue 13)
    files["alphas"] = write_alpha_report(out_dir, rows, files.get("markdown"))
    return {"rows": rows, "headline": report.headline(rows), "files": files}


# ----------------------------------------------------------------------------- CLI
def parser(prog="kvasir-compare") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="Compare float, SGT, PTQ int8, TF-MOT QAT int8, "
                                 "PACT-QAT int8 and SGT-PACT-QAT int8 side by side on one test split.")
    ap.add_argument("--out", default="runs/compare", help="output folder: runs/, models/, reports "
                                                          "(default runs/compare)")
    add_train_args(ap, run_flags=False)
    ap.add_argument("--qat-epochs", type=int, help="epochs of the QAT fine-tuning runs (default --epochs)")
    ap.add_argument("--qat-lr", type=float, help="learning rate of the QAT fine-tuning runs (default --lr)")
    ap.add_argument("--recipe", choices=RECIPES, default="finetune",
                    help="finetune: QAT runs start from the float/SGT run; scratch: all from scratch "
                         "(default finetune)")
    ap.add_argument("--models", help="comma-separated rows to produce (default all): "
                    + ", ".join(v.name for v in VARIANTS))
    ap.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    ap.add_argument("--force", action="store_true", help="convert again even where a .tflite exists")
    ap.add_argument("--num-calibration", type=int, help="PTQ calibration images (default: the converter's)")
    ap.add_argument("--latency-runs", type=int, default=LATENCY_RUNS,
                    help=f"timed invokes per model and thread count (default {LATENCY_RUNS})")
    ap.add_argument("--device-log", action="append", default=[], metavar="ROW=LOG",
                    help="on-device figures for a row: firmware serial capture or benchmark_model output")
    kvasir_tf.add_verbose_flag(ap)
    return ap


def qat_overrides(epochs=None, lr=None) -> dict:
    return {k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None}


@cli
def main(argv=None, prog="kvasir-compare") -> int:
    args = parser(prog).parse_args(argv)
    if args.latency_runs < 50:
        raise KvasirError(f"--latency-runs {args.latency_runs}: use at least 50 for a stable median/p90")
    given = given_settings(args)
    if not given.get("demo") and not given.get("data_dir"):
        raise KvasirError("pass --data-dir DIR (Kvasir v2 or any class-per-folder dataset) or --demo")
    logs = {}
    for item in args.device_log:
        row, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise KvasirError(f"--device-log {item!r}: use ROW=PATH with an existing log file")
        logs[row] = path
    result = run_comparison(
        args.out, base_config(given), qat=qat_overrides(args.qat_epochs, args.qat_lr),
        variants=args.models.split(",") if args.models else None, recipe=args.recipe,
        retrain=args.retrain, force_convert=args.force, num_calibration=args.num_calibration,
        latency_runs=args.latency_runs, device_logs=logs)
    print(result["files"]["markdown"].read_text())
    for f in [result["files"]["markdown"], result["files"]["json"], *result["files"]["plots"]]:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
