"""Keras model -> verified TFLite artifact (float32, fp16, dynamic-range or full int8) + sidecars.

Every conversion is verified before it is reported done: the file loads and runs in
ai-edge-litert, and an int8 model has int8 input/output with no float tensor on any op.
Beside ``NAME.tflite`` go ``NAME.json`` (the sidecar, :mod:`kvasir_tf.artifact`) and
``labels.txt``; optionally ``model_data.cc/.h`` for TFLite Micro and a per-layer PTQ error CSV.

A QAT model is converted with its learned ranges; calibration data (:mod:`kvasir_tf.calibration`,
the run's training split) is used only as a fallback when some op has no learned range.

    kvasir-convert RUN_DIR_OR_MODEL --int8|--float|--fp16|--dynamic [--out PATH] ...
    (tools/convert.py is the same command)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import kvasir_tf
from kvasir_tf import artifact, confidence, rundir, runtime
from kvasir_tf.calibration import (DEFAULT_NUM_CALIBRATION, calibration_images,
                                   representative_dataset)
from kvasir_tf.errors import KvasirError, cli, first_line
from kvasir_tf.model_io import TRUST_FLAG
from kvasir_tf.scoring import calibrate_on_val


@dataclass(frozen=True)
class ConversionMode:
    """One kind of TFLite file: what the converter is told and what verification expects."""

    name: str
    help: str
    optimize: bool = False            # tf.lite.Optimize.DEFAULT
    float16: bool = False             # float16 weights
    integer: bool = False             # int8 input, output and every op
    quantization: str | None = None   # the sidecar's "quantization" for a float source model


MODES = {m.name: m for m in (
    ConversionMode("int8", "full integer: int8 weights, activations, input and output",
                   optimize=True, integer=True, quantization="ptq"),
    ConversionMode("float", "float32"),
    ConversionMode("fp16", "float16 weights", optimize=True, float16=True, quantization="fp16-weights"),
    ConversionMode("dynamic", "dynamic-range (int8 weights, float activations)", optimize=True,
                   quantization="dynamic-range"),
)}


def get_mode(name: str) -> ConversionMode:
    if name not in MODES:
        raise KvasirError(f"unknown mode {name!r}; use one of {', '.join(MODES)}")
    return MODES[name]


@dataclass
class ConversionResult:
    """Where the artifact went and what verification saw."""

    tflite_path: Path
    sidecar_path: Path
    labels_path: Path
    mode: str
    sidecar: dict
    ops: list
    notes: list = field(default_factory=list)
    c_files: tuple = ()
    debug_report: Path | None = None

    @property
    def size_bytes(self) -> int:
        return self.sidecar["size_bytes"]

    @property
    def sha256(self) -> str:
        return self.sidecar["sha256"]


# ----------------------------------------------------------------------------- conversion
def _serving_saved_model(model, directory) -> str:
    """The model's inference function and variables alone, as a SavedModel.

    TFLiteConverter.from_keras_model saves every layer's traced call functions and, for the QAT
    fake quants' custom gradients, their gradient functions too: 80 s for a 64 px QAT model on
    2 cores, against 15 s this way, for the same flatbuffer ops, scales and outputs (tested).
    """
    import tensorflow as tf
    inp = model.inputs[0]
    module = tf.Module()
    module.model_variables = list(model.variables)
    module.serve = tf.function(lambda image: model(image, training=False),
                               input_signature=[tf.TensorSpec([None, *inp.shape[1:]], inp.dtype)])
    path = str(Path(directory) / "saved_model")
    tf.saved_model.save(module, path, signatures=module.serve,
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    return path


@contextlib.contextmanager
def _converter(model, mode: ConversionMode, rep_images=None, qat=False, per_tensor=False):
    import tensorflow as tf
    with tempfile.TemporaryDirectory(prefix="kvasir_convert_") as tmp, _quiet():
        conv = tf.lite.TFLiteConverter.from_saved_model(_serving_saved_model(model, tmp))
        if per_tensor:  # one scale per weight tensor: ~12 bytes/channel smaller, usually less accurate
            conv._experimental_disable_per_channel = True
        if mode.optimize:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode.float16:
            conv.target_spec.supported_types = [tf.float16]
        if mode.integer:
            if rep_images is not None:
                conv.representative_dataset = representative_dataset(rep_images)
            if not qat:  # for QAT this flag would demand calibration data even when ranges are learned
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        yield conv


@contextlib.contextmanager
def _quiet():
    """The converter prints MLIR chatter on stdout/stderr, its C++ calibrator straight to the
    terminal's file descriptors; keep the user's terminal readable (``--verbose`` shows the latter)."""
    out, err = io.StringIO(), io.StringIO()
    # fds first: it flushes the real streams before redirect_stdout swaps them for buffers
    with kvasir_tf.native_output_silenced(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield


def _convert(model, mode: ConversionMode, rep_images=None, *, qat=False, per_tensor=False) -> bytes:
    try:
        with _converter(model, mode, rep_images, qat=qat, per_tensor=per_tensor) as conv:
            return conv.convert()
    except KvasirError:
        raise
    except Exception as exc:  # the converter raises many types; the message is what matters
        raise KvasirError(f"TFLite conversion failed: {first_line(exc)}") from None


def verify(content: bytes, mode, image_size: int, num_classes: int) -> dict:
    """Fail loudly unless the flatbuffer loads, runs and (int8) is integer end to end."""
    mode = get_mode(mode) if isinstance(mode, str) else mode
    try:
        info = runtime.inspect_tflite(content)
    except (RuntimeError, ValueError) as exc:
        raise KvasirError(f"the converted model does not load in ai-edge-litert: {first_line(exc)}") from None
    in_dt, out_dt = np.dtype(info["input"]["dtype"]), np.dtype(info["output"]["dtype"])
    shape = tuple(int(s) for s in info["input"]["shape"])
    if shape[1:] != (image_size, image_size, 3):
        raise KvasirError(f"converted input shape {shape} is not [1, {image_size}, {image_size}, 3]")
    if mode.integer:
        problems = []
        if in_dt != np.int8 or out_dt != np.int8:
            problems.append(f"input {in_dt}, output {out_dt} (want int8, int8)")
        if info["float_ops"]:
            problems.append(f"{len(info['float_ops'])} ops still use float tensors "
                            f"({', '.join(info['float_ops'][:5])})")
        if problems:
            raise KvasirError("int8 verification failed: " + "; ".join(problems) +
                              "; the model has layers without int8 kernels or learned ranges")
    elif in_dt != np.float32 or out_dt != np.float32:
        raise KvasirError(f"{mode.name} verification failed: input {in_dt}, output {out_dt} (want float32)")
    probe = np.full((image_size, image_size, 3), 128, np.uint8)
    try:
        with kvasir_tf.native_output_silenced():
            probs = runtime.run_once(content, probe)
    except (RuntimeError, ValueError) as exc:
        raise KvasirError(f"the converted model does not run in ai-edge-litert: {first_line(exc)}") from None
    if probs.shape[-1] != num_classes or not np.all(np.isfinite(probs)):
        raise KvasirError(f"the converted model's output {probs.shape} is not {num_classes} finite scores")
    return info


def format_ops(ops) -> str:
    counts = Counter(ops)
    return f"{len(ops)} ops: " + ", ".join(f"{name} x{n}" for name, n in sorted(counts.items()))


def _debug_report(model, rep_images, csv_path: Path):
    import tensorflow as tf
    with _converter(model, MODES["int8"], rep_images) as conv:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=representative_dataset(rep_images[: min(len(rep_images), 32)]))
        debugger.run()
        with open(csv_path, "w") as f:
            debugger.layer_statistics_dump(f)
    return csv_path


# ----------------------------------------------------------------------------- API
def out_path_for(src: rundir.Source, mode: str, out=None) -> Path:
    """Where the .tflite goes: ``out`` (a file, or an existing folder that receives it), else
    RUN/export/model_MODE.tflite, or beside a bare Keras file."""
    stem = "model" if src.kind == "run" else src.path.stem
    if out is None:
        base = src.path if src.kind == "run" else src.path.parent
        return base / rundir.EXPORT_DIR / f"{stem}_{mode}.tflite"
    out = Path(out)
    if out.is_dir():
        return out / f"{stem}_{mode}.tflite"
    return out if out.suffix == ".tflite" else out.with_suffix(".tflite")


@dataclass(frozen=True)
class ConversionRequest:
    """What one conversion makes and from which data; each field is the ``kvasir-convert`` flag
    of the same name.

    ``representative``: a Split, a manifest (split.json or its run directory), or uint8 images
    [N, H, W, 3] -- never a bare dataset folder, which would be split anew and could put test
    images into calibration. ``manifest``: a split.json (read with ``data_dir``). One rule picks
    the calibration images and, after ``class_names`` and the source's own, the class names:
    ``representative``, else ``manifest``, else the run's own split (:func:`representative_source`).
    Needed for int8 of a float model; optional for QAT (only ops without learned ranges use it).
    ``per_tensor``: PTQ int8 with one weight scale per tensor instead of per output channel
    (smaller file: per-channel scales/zero points cost 12 bytes per channel; less accurate).
    """

    mode: str = "int8"
    representative: object = None
    manifest: object = None
    num_calibration: int | None = None
    allow_fewer: bool = False
    per_tensor: bool = False
    class_names: tuple | None = None
    data_dir: object = None
    c_array: bool = False
    debug_report: bool = False
    force: bool = False
    trust_model: bool = False


def representative_source(request: ConversionRequest, src: rundir.Source):
    """The calibration data: ``representative``, else ``manifest``, else the run's split, else None."""
    if request.representative is not None:
        return request.representative
    if request.manifest is not None:
        from kvasir_tf.data.split import load_manifest
        return load_manifest(request.manifest, data_dir=request.data_dir)
    return src.split


def _class_names(src, num_classes, request, rep_source) -> tuple:
    """(names, notes): given names, the source's, the calibration data's, the dataset's, or class_i."""
    names, notes = request.class_names, []
    names = list(names) if names is not None else src.class_names
    if names is None and rep_source is not None and not isinstance(rep_source, np.ndarray):
        names = getattr(rep_source, "class_names", None)
    if names is None and request.data_dir is not None:
        from kvasir_tf.data.discovery import discover
        names = list(discover(request.data_dir).class_names)
    if names is None:
        names = [f"class_{i}" for i in range(num_classes)]
        notes.append("no class names known (no run directory or data); labels are class_0..; "
                     "pass --data-dir to name them")
    if len(names) != num_classes:
        raise KvasirError(f"the model has {num_classes} outputs but {len(names)} class names "
                          f"({', '.join(names[:4])}...); pass the dataset it was trained on")
    return list(names), notes


def _load(source, out_path, request) -> rundir.Source:
    if hasattr(source, "predict") and hasattr(source, "inputs"):
        if out_path is None:
            raise KvasirError("out_path is required when converting an in-memory model")
        return rundir.Source(source, Path(getattr(source, "name", "model")), "keras")
    return rundir.load_source(source, data_dir=request.data_dir, trust_model=request.trust_model)


def _check_ptq_options(mode, qat, request):
    if request.per_tensor and (not mode.integer or qat):
        raise KvasirError("--per-tensor applies to post-training --int8 of a float model only")
    if request.debug_report and (not mode.integer or qat):
        raise KvasirError("--debug-report is for post-training int8 quantization of a float model; "
                          "drop it for QAT models and float/fp16/dynamic conversions")


def _learned_ranges_only(model, mode):
    """(bytes, None) for an int8 QAT model whose fake quants cover every op, else (None, why):
    the converter says so only by failing."""
    try:
        return _convert(model, mode, None, qat=True), None
    except KvasirError as exc:
        return None, str(exc)


def _flatbuffer(model, mode, request, *, qat, rep_source, calibrate) -> tuple:
    """(TFLite bytes, Calibration or None, notes): a QAT model tries its learned ranges alone
    first, and calibration data covers only the ops they miss."""
    notes = []
    if mode.integer and qat:
        content, why = _learned_ranges_only(model, mode)
        if content is not None:
            return content, None, notes
        if rep_source is None:
            raise KvasirError(f"{why}; the QAT model has ops without learned ranges, pass "
                              "--manifest RUN/split.json so they can be calibrated")
        notes.append("QAT ranges did not cover every op; converted again with calibration data "
                     "for the uncovered ops (learned ranges still apply)")
    cal = calibrate() if mode.integer else None
    images = None if cal is None else cal.images
    content = _convert(model, mode, images, qat=qat, per_tensor=request.per_tensor)
    return content, cal, notes + ([] if cal is None else list(cal.notes))


def convert(source, out_path=None, mode="int8", *, verbose=True, **options) -> ConversionResult:
    """Convert ``source`` (run dir, Keras file or a loaded tf.keras.Model) and verify the result.

    ``options`` are the fields of :class:`ConversionRequest` (``representative=``,
    ``per_tensor=``, ``force=``...); an unknown one is a TypeError. Same as
    ``convert_request(source, out_path, ConversionRequest(mode, **options))``.
    """
    return convert_request(source, out_path, ConversionRequest(mode, **options), verbose=verbose)


def convert_request(source, out_path, request: ConversionRequest, *, verbose=True) -> ConversionResult:
    """:func:`convert` for a :class:`ConversionRequest` built beforehand."""
    from kvasir_tf.model_io import image_size_of
    from kvasir_tf.qat import is_qat_model
    mode = get_mode(request.mode)
    src = _load(source, out_path, request)
    model = src.model
    image_size = image_size_of(model)
    num_classes = int(model.outputs[0].shape[-1])
    rep_source = representative_source(request, src)
    names, notes = _class_names(src, num_classes, request, rep_source)
    cfg_size = src.config.get("image_size")
    if cfg_size and int(cfg_size) != image_size:
        notes.append(f"run config says image_size {cfg_size} but the model takes {image_size}: "
                     f"calibration/evaluation images are resized to {image_size}")

    out = artifact.ArtifactFiles(out_path_for(src, mode.name, out_path), names, request.c_array, request.debug_report)
    out.check_free(request.force)

    qat = is_qat_model(model)
    _check_ptq_options(mode, qat, request)

    def calibrate():
        if rep_source is None:
            raise KvasirError(f"--int8 on the float model {src.path} needs calibration images from "
                              "its training split; pass --manifest RUN/split.json (or convert the run "
                              "directory itself)")
        return calibration_images(rep_source, image_size, request.num_calibration,
                                  allow_fewer=request.allow_fewer,
                                  mask_overlays=bool(src.config.get("mask_overlays")))

    content, cal, flat_notes = _flatbuffer(model, mode, request, qat=qat, rep_source=rep_source,
                                           calibrate=calibrate)
    notes += flat_notes
    info = verify(content, mode, image_size, num_classes)
    meta = out.write(content, info, dict(
        mode=mode.name, image_size=image_size, class_names=names, source=src.path,
        source_kind=src.kind, quantization="qat" if (mode.integer and qat) else mode.quantization,
        calibration=None if cal is None else cal.provenance,
        per_tensor=request.per_tensor), notes)
    fitted = calibrate_on_val(runtime.TFLiteModel(out.tflite), rep_source,
                              mask_overlays=bool(src.config.get("mask_overlays")))
    notes.append(confidence.describe(fitted))
    meta = confidence.into_sidecar(meta, fitted) if fitted else meta
    meta["notes"] = notes
    out.rewrite_sidecar(meta)
    if out.debug_csv is not None:
        _debug_report(model, cal.images, out.debug_csv)
    result = ConversionResult(out.tflite, out.sidecar, out.labels, mode.name, meta, info["ops"], notes,
                              out.c_files, out.debug_csv)
    if verbose:
        print(summary(result), file=sys.stderr)
    return result


def summary(result: ConversionResult) -> str:
    s = result.sidecar
    lines = [f"wrote {result.tflite_path} ({s['size_bytes'] / 1024:.1f} KiB, {s['mode']}"
             + (f", {s['quantization']}" if s["quantization"] else "") + ")",
             f"  op list, {format_ops(result.ops)}",
             f"  input {s['input']['dtype']} {s['input']['shape']}"
             + (f" scale={s['input']['scale']:.6g} zero_point={s['input']['zero_point']}"
                if s["input"]["scale"] is not None else ""),
             f"  output {s['output']['dtype']}"
             + (f" scale={s['output']['scale']:.6g} zero_point={s['output']['zero_point']}"
                if s["output"]["scale"] is not None else ""),
             f"  sidecar {result.sidecar_path}, labels {result.labels_path}"]
    lines += [f"  {p}" for p in result.c_files]
    if result.debug_report:
        lines.append(f"  per-layer quantization error: {result.debug_report}")
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
def parser(prog="kvasir-convert") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="Convert a training run (or a .keras model) to "
                                 "a verified TFLite model with sidecar and labels.")
    ap.add_argument("source", help="run directory (runs/NAME) or .keras model file")
    for m in MODES.values():
        ap.add_argument(f"--{m.name}", dest="modes", action="append_const", const=m.name, help=m.help)
    ap.add_argument("--out", help="output .tflite path, or an existing folder to write into "
                                  "(default RUN/export/model_MODE.tflite)")
    ap.add_argument("--data-dir", help="dataset root, when it moved since training (relocates the "
                                       "run's split) or to name the classes of a bare .keras file")
    ap.add_argument("--manifest", help="split.json whose training images calibrate a bare .keras file "
                                       "(a run directory uses its own)")
    ap.add_argument("--num-calibration", type=int, default=None,
                    help=f"calibration images for --int8 (default up to {DEFAULT_NUM_CALIBRATION})")
    ap.add_argument("--allow-fewer", action="store_true",
                    help="use all training images when fewer than --num-calibration exist")
    ap.add_argument("--c-array", action="store_true", help="also write model_data.cc/.h for TFLite Micro")
    ap.add_argument("--debug-report", action="store_true",
                    help="per-layer quantization error CSV (post-training --int8 only)")
    ap.add_argument("--per-tensor", action="store_true",
                    help="post-training --int8 with one weight scale per tensor (smaller, less accurate)")
    ap.add_argument("--force", action="store_true", help="overwrite existing output files")
    ap.add_argument(TRUST_FLAG, action="store_true",
                    help="load an .h5 model whose Lambda layers run stored Python code (files you made only)")
    kvasir_tf.add_verbose_flag(ap)
    return ap


@cli
def main(argv=None, prog="kvasir-convert") -> int:
    args = parser(prog).parse_args(argv)
    modes = args.modes or []
    if len(modes) != 1:
        raise KvasirError("choose exactly one of " + ", ".join(f"--{m}" for m in MODES)
                          + (f" (got {' '.join('--' + m for m in modes)})" if modes else ""))
    mode = modes[0]
    if mode != "int8" and (args.num_calibration is not None or args.allow_fewer):
        raise KvasirError(f"--num-calibration/--allow-fewer only apply to --int8, not --{mode}")
    if args.debug_report and mode != "int8":
        raise KvasirError(f"--debug-report only applies to --int8, not --{mode}")
    if args.c_array and mode != "int8":
        print(f"note: --c-array with --{mode}: TFLite Micro runs int8 models best", file=sys.stderr)
    convert_request(args.source, args.out, ConversionRequest(
        mode, num_calibration=args.num_calibration, allow_fewer=args.allow_fewer, force=args.force,
        c_array=args.c_array, debug_report=args.debug_report, data_dir=args.data_dir,
        manifest=args.manifest, per_tensor=args.per_tensor, trust_model=args.trust_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
