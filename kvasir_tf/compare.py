"""Float, PTQ and QAT models side by side on one dataset, one seed and one test split.

Trains (or reuses) one run per training mode, converts each to the artifacts a user would
deploy, evaluates every artifact on the same test images (the first run's split manifest),
times the .tflite files on this host and writes ``comparison.md``/``.json`` and two plots.

The usual recipe (``recipe="finetune"``): ``float`` and ``sgt`` train from scratch; ``qat`` and
``pact-qat`` fine-tune from the float run, ``sgt-pact-qat`` from the SGT run (``--init-from``).
``recipe="scratch"`` trains every mode from scratch.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import kvasir_tf  # noqa: F401  (Keras 2 before TensorFlow)
from kvasir_tf.errors import KvasirError


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
# The paper's Table I: our quantized model against the float SGT model it starts from.
TABLE1_ROWS = ("sgt-keras", "sgt-pact-qat-int8")
REFERENCE = "float-keras"            # "agreement" column: % same top-1 as this row
LATENCY_THREADS = (1, 2)
LATENCY_RUNS = 50
RECIPES = ("finetune", "scratch")
# Run-config keys that do not change what a run learns (paths, logging, bookkeeping); every
# other key must match for a finished run directory to be reused.
REUSE_IGNORED = {"data_dir", "demo", "out", "init_from", "resume", "distribute", "cache_dir",
                 "verbose", "class_names"}

COLUMNS = (  # key, header, format
    ("accuracy", "acc", "{:.3f}"),
    ("macro_sensitivity", "sens", "{:.3f}"),
    ("macro_specificity", "spec", "{:.3f}"),
    ("macro_f1", "F1", "{:.3f}"),
    ("mcc", "MCC", "{:.3f}"),
    ("size_kb", "size KB", "{:.1f}"),
    ("latency_1t_ms", "lat 1T ms", "{:.2f}"),
    ("latency_1t_p90_ms", "p90 1T", "{:.2f}"),
    ("latency_2t_ms", "lat 2T ms", "{:.2f}"),
    ("latency_2t_p90_ms", "p90 2T", "{:.2f}"),
    ("peak_memory_mb", "mem MB", "{:.1f}"),
    ("agreement", "agree float %", "{:.1f}"),
    ("agreement_source", "agree src %", "{:.1f}"),
)

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
def _train_argv(mode, run_dir, data_args, train_args, init_from=None):
    argv = ["--mode", mode, "--out", str(run_dir), *data_args, *train_args]
    if init_from is not None:
        argv += ["--init-from", str(init_from)]
    return argv


def _reusable(run_dir: Path, config) -> bool:
    """A finished run with the same key settings; a different one is an error, not a silent reuse."""
    cfg_path = run_dir / "config.json"
    if not ((run_dir / "checkpoints" / "best.keras").is_file() and (run_dir / "test_metrics.json").is_file()
            and cfg_path.is_file()):
        return False
    stored = json.loads(cfg_path.read_text())
    wanted = {k: v for k, v in dataclasses.asdict(config).items() if k not in REUSE_IGNORED}
    differ = {k: (stored.get(k), v) for k, v in wanted.items() if stored.get(k) != v}
    if differ:
        raise KvasirError(f"{run_dir} was trained with other settings {differ}; pass a new --out "
                          "or --retrain")
    return True


def train_runs(out_dir, modes, *, data_args, train_args=(), qat_train_args=(), recipe="finetune",
               retrain=False) -> dict:
    """Run directory per training mode under ``out_dir/runs``, training only what is missing."""
    from kvasir_tf import train as train_lib
    if recipe not in RECIPES:
        raise KvasirError(f"unknown recipe {recipe!r}; use one of {', '.join(RECIPES)}")
    needed = list(modes)
    if recipe == "finetune":
        for m in list(needed):
            if m in FINETUNE_FROM and FINETUNE_FROM[m] not in needed:
                needed.append(FINETUNE_FROM[m])
    needed = [m for m in TRAIN_ORDER if m in needed]
    runs = {}
    for mode in needed:
        run_dir = Path(out_dir) / "runs" / mode
        init = runs[FINETUNE_FROM[mode]] if recipe == "finetune" and mode in FINETUNE_FROM else None
        extra = list(qat_train_args) if init is not None else []
        config = train_lib.config_from_args(_train_argv(mode, run_dir, data_args,
                                                        [*train_args, *extra], init))
        if not retrain and _reusable(run_dir, config):
            print(f"[compare] reusing {run_dir}")
        else:
            if run_dir.exists() and retrain:
                import shutil
                shutil.rmtree(run_dir)
            print(f"[compare] training {mode} -> {run_dir}" + (f" (from {init})" if init else ""))
            train_lib.train(config)
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
    from kvasir_tf.convert import convert, read_sidecar, sha256_file
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for v in variants:
        run_dir = runs[v.train_mode]
        if v.convert_mode is None:
            paths[v.name] = run_dir / "checkpoints" / "best.keras"
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
            threads=LATENCY_THREADS, memory=True) -> dict:
    """Metrics, size, host latency and memory of every artifact, on ``split``'s test images."""
    from kvasir_tf import evaluate as ev
    rows = {}
    bar = _progress(len(variants), "measuring")
    try:
        for v in variants:
            path = Path(paths[v.name])
            bar.set_postfix_str(v.name)
            report = ev.evaluate(path, split, "test", data_dir=data_dir)
            row = {k: report[k] for k in ("accuracy", "macro_sensitivity", "macro_specificity",
                                          "macro_f1", "mcc", "n")}
            row.update(name=v.name, label=v.label, train_mode=v.train_mode,
                       format=v.convert_mode or "keras", path=str(path),
                       size_kb=path.stat().st_size / 1024.0,
                       predictions=report["predictions"], per_class=report["per_class"],
                       confusion_matrix=report["confusion_matrix"])
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


# ----------------------------------------------------------------------------- reports
def _fmt(value, fmt):
    return "-" if value is None else fmt.format(value)


def markdown_table(rows, names=None, columns=COLUMNS) -> str:
    names = [n for n in (names or rows) if n in rows]
    cols = list(columns)
    if any("device_latency_ms" in rows[n] for n in names):
        cols.append(("device_latency_ms", "device ms", "{:.2f}"))
    head = "| model | " + " | ".join(h for _, h, _ in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [head, sep]
    for n in names:
        r = rows[n]
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(r.get(k), f) for k, _, f in cols) + " |")
    return "\n".join(lines)


def headline(rows: dict) -> dict:
    """The figures the project promises, computed from the table."""
    out = {}
    f, i8 = rows.get("float"), rows.get("ptq-int8")
    if f and i8:
        out["int8_size_ratio"] = i8["size_kb"] / f["size_kb"]
        if f.get("latency_1t_ms") and i8.get("latency_1t_ms"):
            out["int8_latency_ratio_1t"] = i8["latency_1t_ms"] / f["latency_1t_ms"]
    pt = rows.get("ptq-int8-per-tensor")
    if f and pt:
        out["int8_per_tensor_size_ratio"] = pt["size_kb"] / f["size_kb"]
    for q in ("qat", "pact-qat", "sgt-pact-qat"):
        k, t = rows.get(f"{q}-keras"), rows.get(f"{q}-int8")
        if k and t:
            out[f"{q}_int8_minus_keras_points"] = 100.0 * (t["accuracy"] - k["accuracy"])
            out[f"{q}_int8_agreement_with_keras"] = t.get("agreement_source")
    fk = rows.get("float-keras")
    if fk and i8:
        out["ptq_drop_points"] = 100.0 * (fk["accuracy"] - i8["accuracy"])
    if fk and pt:
        out["ptq_per_tensor_drop_points"] = 100.0 * (fk["accuracy"] - pt["accuracy"])
    return out


def write_reports(rows: dict, out_dir, *, title="kvasir_tf comparison", context=None) -> dict:
    """comparison.md / comparison.json and the accuracy-vs-size and accuracy-vs-latency plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heads = headline(rows)
    md = [f"# {title}", ""]
    if context:
        md += [f"- {k}: {v}" for k, v in context.items()] + [""]
    md += ["## Table I: our model vs the SGT model", "",
           markdown_table(rows, TABLE1_ROWS), "",
           "## All models", "", markdown_table(rows), "",
           "acc/sens/spec/F1/MCC on the test split (sens/spec: one-vs-rest, macro over the classes present in the test split); "
           "latency: median over single-image invokes, ai-edge-litert with XNNPACK, 1 and 2 threads; "
           "mem: peak RSS added by loading and running the model; agree: % same top-1 as the float "
           "Keras model / as the Keras model the artifact was converted from.", ""]
    if heads:
        md += ["## Headline figures", ""] + [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}"
                                              for k, v in heads.items()] + [""]
    md_path = out / "comparison.md"
    md_path.write_text("\n".join(md))
    slim = {n: {k: v for k, v in r.items() if k != "predictions"} for n, r in rows.items()}
    json_path = out / "comparison.json"
    json_path.write_text(json.dumps({"context": context or {}, "headline": heads, "rows": slim},
                                    indent=2, default=str) + "\n")
    plots = [_plot(rows, "size_kb", "file size (KB)", out / "accuracy_vs_size.png"),
             _plot(rows, "latency_1t_ms", "host latency, 1 thread (ms)", out / "accuracy_vs_latency.png")]
    return {"markdown": md_path, "json": json_path, "plots": [p for p in plots if p]}


def _plot(rows, xkey, xlabel, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # Deployable artifacts only: a .keras checkpoint's size is not what a device stores.
    pts = sorted((r[xkey], r["accuracy"], r["label"], r["format"]) for r in rows.values()
                 if r.get(xkey) is not None and r["format"] != "keras")
    if not pts:
        return None
    colours = {"float": "tab:blue", "fp16": "tab:cyan", "dynamic": "tab:purple", "int8": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for i, (x, y, label, fmt) in enumerate(pts):
        ax.scatter(x, y, s=40, color=colours.get(fmt, "tab:gray"))
        # alternate label offsets so neighbours with equal accuracy stay readable
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4 if i % 2 == 0 else -11),
                    fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"accuracy vs {xlabel.split(' (')[0]}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def select_variants(names=None):
    if not names:
        return list(VARIANTS)
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KvasirError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def run_comparison(out_dir, *, data_args, train_args=(), qat_train_args=(), variants=None,
                   recipe="finetune", retrain=False, force_convert=False, num_calibration=None,
                   latency_runs=LATENCY_RUNS, device_logs=None, data_dir=None) -> dict:
    """Train/reuse, convert, measure and report; returns {"rows", "headline", "files"}."""
    variants = select_variants(variants)
    out_dir = Path(out_dir)
    runs = train_runs(out_dir, {v.train_mode for v in variants}, data_args=data_args,
                      train_args=train_args, qat_train_args=qat_train_args, recipe=recipe,
                      retrain=retrain)
    paths = convert_variants(runs, variants, out_dir / "models", num_calibration=num_calibration,
                             force=force_convert)
    first = runs[variants[0].train_mode]
    rows = measure(variants, paths, first, data_dir=data_dir, latency_runs=latency_runs)
    merge_device_logs(rows, device_logs)
    cfg = json.loads((first / "config.json").read_text())
    context = {"data": cfg.get("data_dir") or "demo", "image_size": cfg.get("image_size"),
               "width multiplier": cfg.get("alpha"), "seed": cfg.get("seed"), "recipe": recipe,
               "test images": next(iter(rows.values()))["n"]}
    files = write_reports(rows, out_dir, context=context)
    return {"rows": rows, "headline": headline(rows), "files": files}
