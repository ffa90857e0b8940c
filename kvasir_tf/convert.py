"""Keras model -> verified TFLite artifact (float32, fp16, dynamic-range or full int8) + sidecars.

Every conversion is verified before it is reported done: the file loads and runs in
ai-edge-litert, and an int8 model has int8 input/output with no float tensor on any op.
Beside ``NAME.tflite`` go ``NAME.json`` (the sidecar: pixel -> input map, output scale, class
names, sha256; the Android app and the firmware read it instead of hard-coding numbers) and
``labels.txt``; optionally ``model_data.cc/.h`` for TFLite Micro and a per-layer PTQ error CSV.

PTQ calibration images come from the run's TRAINING split, so the test split stays unseen.
A QAT model is converted with its learned ranges; calibration data is used only as a fallback
when some op has no learned range (the converter would otherwise leave it in float).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import kvasir_tf
from kvasir_tf.errors import DataError, KvasirError

MODES = ("int8", "float", "fp16", "dynamic")
DEFAULT_NUM_CALIBRATION = 300
CALIBRATION_SEED = 0
SIDECAR_FORMAT = 1
LABELS_NAME = "labels.txt"
C_ARRAY_NAME = "model_data"
C_ARRAY_ALIGN = 16
TFLITE_MAGIC = b"TFL3"          # flatbuffer file identifier at bytes 4..8
KERAS_ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
FLOAT_DTYPES = (np.float32, np.float16, np.float64)


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


@dataclass
class Source:
    """A loaded Keras model with what is known about where it came from."""

    model: object
    path: Path
    kind: str                      # "run" or "keras"
    class_names: list | None = None
    split: object = None           # kvasir_tf.data.split.Split of the run, if any
    config: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers

def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_tflite_file(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) == 8 and head[4:8] == TFLITE_MAGIC


def sidecar_path_for(tflite_path) -> Path:
    return Path(tflite_path).with_suffix(".json")


def read_sidecar(tflite_path) -> dict | None:
    """The sidecar beside a .tflite, or None when there is none."""
    path = sidecar_path_for(tflite_path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise KvasirError(f"{path}: not valid JSON ({exc}); re-run tools/convert.py --force") from None


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def model_image_size(model) -> int:
    shape = model.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
        raise KvasirError(f"model input shape {tuple(shape)} is not [B, S, S, 3]; "
                          "convert a classifier built by kvasir_tf.model.build_mobilenetv2")
    return int(shape[1])


def is_qat(model) -> bool:
    from kvasir_tf import quantization
    return quantization.is_qat_model(model)


# ----------------------------------------------------------------------------- source loading

def _load_keras_file(path: Path):
    from kvasir_tf import quantization
    if not path.is_file():
        raise KvasirError(f"model file {path} not found; pass a run directory or a .keras file "
                          "(runs/NAME/checkpoints/best.keras)")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == TFLITE_MAGIC:
        raise KvasirError(f"{path} is already a TFLite flatbuffer; convert takes the Keras model "
                          "(runs/NAME or runs/NAME/checkpoints/best.keras)")
    if not (head.startswith(KERAS_ZIP_MAGIC) or head.startswith(HDF5_MAGIC)):
        raise KvasirError(f"{path} is not a Keras model file (.keras zip or .h5); pass the "
                          "checkpoint written by training (runs/NAME/checkpoints/best.keras)")
    if head.startswith(KERAS_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile:
            names = set()
        if "config.json" not in names:
            raise KvasirError(f"{path} is a zip file but not a Keras model (no config.json inside); "
                              "pass runs/NAME/checkpoints/best.keras")
    try:
        return quantization.load_model(path)
    except KvasirError:
        unknown = _unknown_classes(path) if head.startswith(KERAS_ZIP_MAGIC) else []
        if unknown:
            raise KvasirError(f"{path} uses layer classes unknown to kvasir_tf ({', '.join(unknown)}); "
                              "save models built from kvasir_tf's own layers "
                              "(kvasir_tf.model.build_mobilenetv2) with kvasir_tf.quantization.save_model") from None
        raise


def _unknown_classes(path: Path) -> list:
    """Layer class names in a .keras config that neither Keras nor kvasir_tf can build."""
    import tensorflow as tf
    from kvasir_tf import quantization
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except (KeyError, ValueError, zipfile.BadZipFile):
        return []
    import tensorflow_model_optimization as tfmot
    known = {"Functional", "Sequential", "Model"}
    with tfmot.quantization.keras.quantize_scope(quantization.custom_objects()) as scope:
        for objects in getattr(scope, "custom_objects", []):
            known |= set(objects)
    found = set()

    def walk(node):
        if isinstance(node, dict):
            name = node.get("class_name")
            if isinstance(name, str) and "config" in node:
                reg = node.get("registered_name") or name
                if (name not in known and reg not in known and not hasattr(tf.keras.layers, name)
                        and not hasattr(tf.keras, name)
                        and tf.keras.utils.get_registered_object(reg) is None
                        and not hasattr(tf.keras.initializers, name)
                        and not hasattr(tf.keras.regularizers, name)
                        and not hasattr(tf.keras.constraints, name)):
                    found.add(name)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return sorted(found)


def _config_class_names(config: dict) -> list | None:
    names = config.get("class_names")
    return [str(n) for n in names] if names else None


def _run_dir_of(model_path: Path) -> Path | None:
    """runs/NAME for runs/NAME/checkpoints/X.keras, so a bare checkpoint still finds its labels."""
    for d in (model_path.parent, model_path.parent.parent):
        if (d / "config.json").is_file() and (d / "split.json").is_file():
            return d
    return None


def load_source(source, data_dir=None) -> Source:
    """A run directory (config.json + checkpoints/best.keras + split.json) or a Keras file."""
    path = Path(source)
    if not path.exists():
        raise KvasirError(f"{path} not found; pass a run directory (runs/NAME) or a .keras model file")
    if path.is_dir():
        if not (path / "checkpoints" / "best.keras").is_file():
            raise KvasirError(f"{path} is not a run directory (no checkpoints/best.keras); "
                              "pass runs/NAME written by `python -m kvasir_tf.train`")
        try:
            from kvasir_tf.train import load_run
        except ImportError:  # training module absent: read the run layout directly
            load_run = None
        if load_run is not None:
            model, config, split = load_run(path, data_dir=data_dir)
        else:
            from kvasir_tf.data.split import load_manifest
            model = _load_keras_file(path / "checkpoints" / "best.keras")
            config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
            split = load_manifest(path, data_dir=data_dir)
        names = _config_class_names(config) or (list(split.class_names) if split is not None else None)
        return Source(model, path, "run", names, split, dict(config))
    model = _load_keras_file(path)
    run = _run_dir_of(path)
    config, split = {}, None
    if run is not None:
        config = json.loads((run / "config.json").read_text())
        try:
            from kvasir_tf.data.split import load_manifest
            split = load_manifest(run, data_dir=data_dir)
        except DataError:
            split = None
    names = _config_class_names(config) or (list(split.class_names) if split is not None else None)
    return Source(model, path, "keras", names, split, config)


# ----------------------------------------------------------------------------- calibration

def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    import cv2
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def calibration_images(representative, image_size: int, num_calibration=None, *,
                       allow_fewer=False, notes=None) -> np.ndarray:
    """uint8 [N, S, S, 3] drawn from the training split (a Split, a data dir or an image array).

    ``num_calibration=None`` means "up to DEFAULT_NUM_CALIBRATION": fewer is fine and noted.
    An explicit count that the data cannot meet is an error unless ``allow_fewer``.
    """
    notes = notes if notes is not None else []
    asked = DEFAULT_NUM_CALIBRATION if num_calibration is None else int(num_calibration)
    if asked < 1:
        raise KvasirError(f"--num-calibration must be >= 1, got {asked}")
    rng = np.random.default_rng(CALIBRATION_SEED)
    if isinstance(representative, (str, Path)):
        from kvasir_tf.data.discovery import discover
        from kvasir_tf.data.split import load_manifest, stratified_split
        p = Path(representative)
        if p.suffix == ".json" or (p / "split.json").is_file():
            representative = load_manifest(p)
        else:
            representative = stratified_split(discover(p), seed=CALIBRATION_SEED)
    if isinstance(representative, np.ndarray):
        images = representative
        if images.ndim != 4 or images.shape[-1] != 3:
            raise KvasirError(f"representative images must be [N, H, W, 3], got {images.shape}")
        available, where = len(images), "the given image array"
    else:  # a Split
        paths = representative.paths("train")
        available, where = len(paths), f"the training split of {representative.root}"
        images = None
    if available == 0:
        raise DataError(f"no calibration images: {where} is empty; pass --data-dir with a dataset "
                        "that has training images")
    if available < asked:
        if num_calibration is not None and not allow_fewer:
            raise DataError(f"asked for {asked} calibration images but {where} has only {available}; "
                            f"pass --num-calibration {available} (or --allow-fewer)")
        notes.append(f"calibration: {available} images available in {where}, fewer than {asked}; "
                     "using all of them")
    n = min(asked, available)
    idx = np.sort(rng.permutation(available)[:n])
    if images is None:
        from kvasir_tf.data.pipeline import load_images
        return load_images([paths[i] for i in idx], image_size)
    images = images[idx]
    if images.shape[1:3] != (image_size, image_size):
        notes.append(f"representative images are {images.shape[2]}x{images.shape[1]} but the model "
                     f"takes {image_size}x{image_size}: resized")
        images = _resize_uint8(np.clip(images, 0, 255).astype(np.uint8), image_size)
    return np.asarray(images)


def _rep_dataset(images: np.ndarray):
    """Calibration batches; the first image gets one black and one white pixel.

    The input tensor's range is the min/max seen in calibration. Pinning it to the full
    pixel range [0, 255] makes a PTQ model's input map exactly ``q = p - 128`` (scale 1,
    zero point -128) like the QAT model's, so devices feed ``p ^ 0x80`` whatever the data;
    two pixels of one image barely move any downstream range.
    """
    from kvasir_tf.preprocessing import PIXEL_MAX, PIXEL_MIN

    def gen():
        for i, im in enumerate(images):
            x = im[None].astype(np.float32)
            if i == 0:
                x[0, 0, 0, :] = PIXEL_MIN
                x[0, 0, -1, :] = PIXEL_MAX
            yield [x]
    return gen


# ----------------------------------------------------------------------------- conversion

def _converter(model, mode: str, rep_images=None, qat=False, per_tensor=False):
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if per_tensor:  # one scale per weight tensor: ~12 bytes/channel smaller, usually less accurate
        conv._experimental_disable_per_channel = True
    if mode == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if rep_images is not None:
            conv.representative_dataset = _rep_dataset(rep_images)
        if not qat:  # for QAT this flag would demand calibration data even when ranges are learned
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv


@contextlib.contextmanager
def _quiet():
    """The converter prints MLIR chatter on stdout/stderr; keep the user's terminal readable."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield


def _convert(conv) -> bytes:
    try:
        with _quiet():
            return conv.convert()
    except Exception as exc:  # the converter raises many types; the message is what matters
        raise KvasirError(f"TFLite conversion failed: {_first_line(exc)}") from None


def make_interpreter(model_content=None, model_path=None, num_threads=None, delegates=True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kwargs = {"num_threads": num_threads} if num_threads else {}
    if not delegates:  # plain builtin kernels, so the op list shows the model's own ops
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_content=model_content, model_path=str(model_path) if model_path else None,
                       **kwargs)


def inspect_tflite(content: bytes) -> dict:
    """Op list, input/output details and the ops that touch a float tensor."""
    it = make_interpreter(model_content=content, delegates=False)
    it.allocate_tensors()
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops, float_ops = [], []
    for op in it._get_ops_details():
        ops.append(op["op_name"])
        idx = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i in tensors]
        dtypes = {np.dtype(tensors[i]["dtype"]) for i in idx}
        if any(d in dtypes for d in map(np.dtype, FLOAT_DTYPES)):
            float_ops.append(f"{op['op_name']}#{op['index']}")
    return {"ops": ops, "float_ops": float_ops,
            "input": it.get_input_details()[0], "output": it.get_output_details()[0]}


def _run_once(content: bytes, image: np.ndarray) -> np.ndarray:
    """Run one image through the runtime the app uses (with XNNPACK) to prove it executes."""
    it = make_interpreter(model_content=content)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], quantize_input(image[None], inp))
    it.invoke()
    return dequantize_output(it.get_tensor(out["index"]), out)


def quantize_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    """Raw pixels -> the input tensor's dtype using its own scale/zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.int8 or dtype == np.uint8:
        from kvasir_tf.preprocessing import pixels_to_int8
        scale, zp = detail["quantization"]
        if dtype == np.int8:
            return pixels_to_int8(pixels, scale, zp)
        q = np.round(np.asarray(pixels, np.float32) / scale) + zp
        return np.clip(q, 0, 255).astype(np.uint8)
    return np.asarray(pixels, dtype=dtype)


def dequantize_output(values: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
        scale, zp = detail["quantization"]
        return (values.astype(np.float32) - zp) * scale
    return values.astype(np.float32)


def verify(content: bytes, mode: str, image_size: int, num_classes: int) -> dict:
    """Fail loudly unless the flatbuffer loads, runs and (int8) is integer end to end."""
    try:
        info = inspect_tflite(content)
    except (RuntimeError, ValueError) as exc:
        raise KvasirError(f"the converted model does not load in ai-edge-litert: {_first_line(exc)}") from None
    in_dt, out_dt = np.dtype(info["input"]["dtype"]), np.dtype(info["output"]["dtype"])
    shape = tuple(int(s) for s in info["input"]["shape"])
    if shape[1:] != (image_size, image_size, 3):
        raise KvasirError(f"converted input shape {shape} is not [1, {image_size}, {image_size}, 3]")
    if mode == "int8":
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
        raise KvasirError(f"{mode} verification failed: input {in_dt}, output {out_dt} (want float32)")
    probe = np.full((image_size, image_size, 3), 128, np.uint8)
    try:
        probs = _run_once(content, probe)
    except (RuntimeError, ValueError) as exc:
        raise KvasirError(f"the converted model does not run in ai-edge-litert: {_first_line(exc)}") from None
    if probs.shape[-1] != num_classes or not np.all(np.isfinite(probs)):
        raise KvasirError(f"the converted model's output {probs.shape} is not {num_classes} finite scores")
    return info


def format_ops(ops) -> str:
    counts = Counter(ops)
    return f"{len(ops)} ops: " + ", ".join(f"{name} x{n}" for name, n in sorted(counts.items()))


# ----------------------------------------------------------------------------- writers

def build_sidecar(tflite_path: Path, info: dict, *, mode, image_size, class_names, source,
                  source_kind, quantization, calibration, per_tensor=False) -> dict:
    inp, out = info["input"], info["output"]

    def tensor(detail, role):
        dtype = np.dtype(detail["dtype"]).name
        d = {"name": detail["name"], "shape": [int(s) for s in detail["shape"]], "dtype": dtype}
        if dtype in ("int8", "uint8"):
            scale, zp = detail["quantization"]
            d.update(scale=float(scale), zero_point=int(zp))
            d["map"] = ("q = clamp(round(p / scale) + zero_point, -128, 127), p = raw RGB pixel 0..255"
                        if role == "input" else "probability = (q - zero_point) * scale")
        else:
            d.update(scale=None, zero_point=None)
            d["map"] = ("raw RGB pixels 0..255 as float32; the model normalises internally"
                        if role == "input" else "softmax probabilities")
        return d

    return {
        "format": SIDECAR_FORMAT,
        "tflite": tflite_path.name,
        "sha256": sha256_file(tflite_path),
        "size_bytes": tflite_path.stat().st_size,
        "mode": mode,
        "quantization": quantization,
        "weight_granularity": None if mode != "int8" else ("per-tensor" if per_tensor else "per-channel"),
        "image_size": image_size,
        "channels": 3,
        "color_order": "RGB",
        "input": tensor(inp, "input"),
        "output": tensor(out, "output"),
        "class_names": list(class_names),
        "num_classes": len(class_names),
        "labels": LABELS_NAME,
        "source": str(source),
        "source_kind": source_kind,
        "calibration": calibration,
        "ops": dict(sorted(Counter(info["ops"]).items())),
        "generated_by": f"kvasir_tf {kvasir_tf.__version__} (kvasir_tf.convert)",
    }


def c_array_sources(content: bytes, sidecar_name: str, tflite_name: str) -> tuple[str, str]:
    """model_data.h / model_data.cc text for TFLite Micro (16-byte aligned const array)."""
    guard = "KVASIR_TF_MODEL_DATA_H_"
    note = (f"// Generated by kvasir_tf {kvasir_tf.__version__} (tools/convert.py --c-array) from "
            f"{tflite_name}; do not edit.\n// Input scale/zero point, image size and class names: "
            f"see {sidecar_name}.\n")
    header = (f"{note}#ifndef {guard}\n#define {guard}\n\n"
              f"extern const unsigned char g_model_data[];\nextern const unsigned int g_model_data_len;\n\n"
              f"#endif  // {guard}\n")
    rows = []
    for i in range(0, len(content), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in content[i:i + 12]) + ",")
    body = (f"{note}#include \"{C_ARRAY_NAME}.h\"\n\n"
            f"alignas({C_ARRAY_ALIGN}) const unsigned char g_model_data[] = {{\n"
            + "\n".join(rows) +
            f"\n}};\nconst unsigned int g_model_data_len = {len(content)};\n")
    return header, body


def parse_c_array(text: str) -> bytes:
    """Bytes of g_model_data from a generated .cc (for tests and sanity checks)."""
    import re
    start = text.index("g_model_data[] = {")
    end = text.index("};", start)
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", text[start:end]))


def _labels_text(class_names) -> str:
    return "".join(f"{n}\n" for n in class_names)


def _check_free(paths, force, labels_path, labels_text):
    """Refuse to overwrite anything unless forced (an identical labels.txt is not a conflict)."""
    for p in paths:
        if not p.exists() or force:
            continue
        if p == labels_path and p.read_text() == labels_text:
            continue
        raise KvasirError(f"{p} already exists; pass --force to overwrite it or choose another --out")


def _debug_report(model, rep_images, csv_path: Path):
    import tensorflow as tf
    conv = _converter(model, "int8", rep_images)
    with _quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=_rep_dataset(rep_images[: min(len(rep_images), 32)]))
        debugger.run()
        with open(csv_path, "w") as f:
            debugger.layer_statistics_dump(f)
    return csv_path


# ----------------------------------------------------------------------------- API

def default_out_path(source: Source, mode: str) -> Path:
    base = source.path if source.kind == "run" else source.path.parent
    stem = "model" if source.kind == "run" else source.path.stem
    return base / "export" / f"{stem}_{mode}.tflite"


def convert(source, out_path=None, mode="int8", *, representative=None, num_calibration=None,
            allow_fewer=False, force=False, c_array=False, debug_report=False, class_names=None,
            data_dir=None, per_tensor=False, verbose=True) -> ConversionResult:
    """Convert ``source`` (run dir, Keras file or a loaded tf.keras.Model) and verify the result.

    representative: a Split, a data dir / manifest path, or uint8 images [N, H, W, 3]; default
    is the run's training split. Needed for int8 of a float model; optional for QAT.
    per_tensor: PTQ int8 with one weight scale per tensor instead of per output channel
    (smaller file: per-channel scales/zero points cost 12 bytes per channel; less accurate).
    """
    if mode not in MODES:
        raise KvasirError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    notes = []
    if hasattr(source, "predict") and hasattr(source, "inputs"):
        src = Source(source, Path(getattr(source, "name", "model")), "keras")
        if out_path is None:
            raise KvasirError("out_path is required when converting an in-memory model")
    else:
        src = load_source(source, data_dir=data_dir)
    model = src.model
    image_size = model_image_size(model)
    num_classes = int(model.outputs[0].shape[-1])
    names = list(class_names) if class_names is not None else src.class_names
    if names is None and representative is not None and not isinstance(representative, np.ndarray):
        names = getattr(representative, "class_names", None)
    if names is None and data_dir is not None:
        from kvasir_tf.data.discovery import discover
        names = list(discover(data_dir).class_names)
    if names is None:
        names = [f"class_{i}" for i in range(num_classes)]
        notes.append("no class names known (no run directory or data); labels are class_0..; "
                     "pass --data-dir to name them")
    if len(names) != num_classes:
        raise KvasirError(f"the model has {num_classes} outputs but {len(names)} class names "
                          f"({', '.join(names[:4])}...); pass the dataset it was trained on")
    cfg_size = src.config.get("image_size")
    if cfg_size and int(cfg_size) != image_size:
        notes.append(f"run config says image_size {cfg_size} but the model takes {image_size}: "
                     f"calibration/evaluation images are resized to {image_size}")

    out_path = Path(out_path) if out_path is not None else default_out_path(src, mode)
    if out_path.suffix != ".tflite":
        out_path = out_path.with_suffix(".tflite")
    out_dir = out_path.parent
    sidecar = sidecar_path_for(out_path)
    labels = out_dir / LABELS_NAME
    c_files = (out_dir / f"{C_ARRAY_NAME}.h", out_dir / f"{C_ARRAY_NAME}.cc") if c_array else ()
    debug_csv = out_path.with_name(out_path.stem + "_quant_debug.csv") if debug_report else None
    labels_text = _labels_text(names)
    _check_free([out_path, sidecar, labels, *c_files, *([debug_csv] if debug_csv else [])],
                force, labels, labels_text)

    qat = is_qat(model)
    if per_tensor and (mode != "int8" or qat):
        raise KvasirError("--per-tensor applies to post-training --int8 of a float model only")
    if debug_report and (mode != "int8" or qat):
        raise KvasirError("--debug-report is for post-training int8 quantization of a float model; "
                          "drop it for QAT models and float/fp16/dynamic conversions")
    rep_source = representative if representative is not None else (src.split or data_dir)
    quant = {"int8": "qat" if qat else "ptq", "float": None, "fp16": "fp16-weights",
             "dynamic": "dynamic-range"}[mode]

    def calibrate():
        if rep_source is None:
            raise KvasirError(f"--int8 on the float model {src.path} needs calibration images from "
                              "its training split; pass --data-dir (or a run directory with split.json)")
        return calibration_images(rep_source, image_size, num_calibration,
                                  allow_fewer=allow_fewer, notes=notes)

    content, rep_images = None, None
    if mode == "int8" and qat:
        try:  # learned ranges alone, no data
            content = _convert(_converter(model, mode, None, qat=True))
            verify(content, mode, image_size, num_classes)
        except KvasirError as exc:
            if rep_source is None:
                raise KvasirError(f"{exc}; the QAT model has ops without learned ranges, pass "
                                  "--data-dir so they can be calibrated") from None
            notes.append("QAT ranges did not cover every op; converted again with calibration data "
                         "for the uncovered ops (learned ranges still apply)")
            content = None
    if content is None:
        if mode == "int8":
            rep_images = calibrate()
        content = _convert(_converter(model, mode, rep_images, qat=qat, per_tensor=per_tensor))
    calibration = (None if rep_images is None else
                   {"num_images": int(len(rep_images)), "subset": "train", "seed": CALIBRATION_SEED})
    info = verify(content, mode, image_size, num_classes)

    out_dir.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(content)
    labels.write_text(labels_text)
    meta = build_sidecar(out_path, info, mode=mode, image_size=image_size, class_names=names,
                         source=src.path, source_kind=src.kind, quantization=quant,
                         calibration=calibration, per_tensor=per_tensor)
    if notes:
        meta["notes"] = notes
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    if c_array:
        h, cc = c_array_sources(content, sidecar.name, out_path.name)
        c_files[0].write_text(h)
        c_files[1].write_text(cc)
    if debug_csv is not None:
        _debug_report(model, rep_images, debug_csv)
    result = ConversionResult(out_path, sidecar, labels, mode, meta, info["ops"], notes,
                              tuple(c_files), debug_csv)
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
