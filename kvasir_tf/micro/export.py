"""One call from a run (or an int8 .tflite with its sidecar) to everything the firmware compiles:
the folded int8 model, its C array, model_settings.h/.cc, the op resolver, the TFLM check and the
board's budget report. Every check runs before the first file is written."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from kvasir_tf import artifact
from kvasir_tf import device_preprocessing as dp
from kvasir_tf.errors import KvasirError
from kvasir_tf.micro import budgets, codegen, fold, tflm
from kvasir_tf.micro import per_tensor as per_tensor_lib

MODEL_NAME = "model_micro.tflite"
MAX_CHECK_IMAGES = 200


def _from_run(run_dir: Path, tmp: Path, data_dir=None):
    """int8-convert a run into ``tmp``; returns (tflite path, sidecar, the run's split)."""
    from kvasir_tf.convert import convert
    from kvasir_tf.data.split import load_manifest
    result = convert(run_dir, tmp / "model_int8.tflite", "int8", verbose=False, data_dir=data_dir)
    split = load_manifest(run_dir, data_dir)
    return result.tflite_path, result.sidecar, split


def _test_images(split, size, limit=MAX_CHECK_IMAGES):
    from kvasir_tf.data.pipeline import load_images
    paths, labels = split.paths("test")[:limit], split.labels("test")[:limit]
    return load_images(paths, size), labels


def run_test_images(run_dir, limit=MAX_CHECK_IMAGES, data_dir=None):
    """(uint8 images [N, S, S, 3], labels) of a run's test split, resized as in training."""
    from kvasir_tf.data.split import load_manifest
    from kvasir_tf.rundir import read_config
    size = int(read_config(run_dir)["image_size"])
    return _test_images(load_manifest(run_dir, data_dir), size, limit)


def _load_tflite(path: Path):
    side = artifact.load_sidecar(path)   # KvasirError when it describes another file
    if side is None:
        raise KvasirError(f"{path}: no sidecar {artifact.sidecar_path_for(path).name} beside it; convert "
                          "with tools/convert.py --int8, which writes both")
    return path, side


def check_int8(sidecar: dict, path) -> tuple:
    """(size, scale, zero point) of an int8 model; KvasirError for a float one."""
    inp = sidecar.get("input") or {}
    if inp.get("dtype") != "int8" or sidecar.get("mode") not in (None, "int8"):
        raise KvasirError(f"{path} is a {sidecar.get('mode') or inp.get('dtype')} model: microcontrollers "
                          "run the full-integer model; convert with tools/convert.py --int8 (or pass the run)")
    return dp.input_map(sidecar)


def _tflm_ms(content: bytes, inputs) -> float:
    """Host TFLM (reference kernels) time per image, best of two passes: a relative figure only."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        tflm.run_tflm(content, inputs, 1 << 22)
        best = min(best, (time.perf_counter() - start) * 1e3 / max(len(inputs), 1))
    return best


def _fold_check(original: bytes, folded: bytes, inputs: np.ndarray) -> dict:
    """Folded vs unfolded graph (LiteRT reference kernels) in int8 steps: the first conv's output
    (the fold itself) and the model's output (after the network amplified the rounding)."""
    a, b = tflm.run_reference(original, inputs), tflm.run_reference(folded, inputs)
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    ca, cb = tflm.first_conv_output(original, inputs[:8]), tflm.first_conv_output(folded, inputs[:8])
    dc = np.abs(ca.astype(np.int32) - cb.astype(np.int32))
    return {"first_conv_max_steps": int(dc.max()), "first_conv_changed": float((dc > 0).mean()),
            "host_tflm_ms_per_image": {"unfolded": _tflm_ms(original, inputs[:8]), "folded": _tflm_ms(folded, inputs[:8])},
            "max_steps": int(d.max()), "mean_steps": float(d.mean()),
            "within_one_step": float((d.max(axis=1) <= 1).mean()),
            "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean())}


def _outputs(out_dir: Path) -> list:
    names = [MODEL_NAME, "model_micro.json", artifact.LABELS_NAME, "model_data.h", "model_data.cc",
             "model_settings.h", "model_settings.cc", codegen.RESOLVER_NAME, "budget.json", "budget.md",
             "tflm_check.json"]
    return [out_dir / n for n in names]


PER_TENSOR_CHOICES = {"all": per_tensor_lib.WEIGHTED_OPS, "pointwise": ("CONV_2D", "FULLY_CONNECTED")}


def _source(source: Path, tmp: Path, data_dir, images, labels):
    """(tflite path, sidecar, test images, labels) of a run directory or an int8 .tflite."""
    if source.is_dir():
        path, side, split = _from_run(source, tmp, data_dir)
        if images is None:
            images, labels = _test_images(split, int(side["image_size"]))
    elif source.is_file():
        path, side = _load_tflite(source)
    else:
        raise KvasirError(f"{source} is neither a run directory nor a .tflite file")
    check_int8(side, path)
    if images is None or len(images) == 0:
        raise KvasirError(f"{source}: no test images to check the model in TFLite Micro; pass a run "
                          "directory or images")
    return path, side, np.asarray(images), labels


def _accuracy(outputs, labels):
    if labels is None or len(labels) != len(outputs):
        return None
    return float((np.asarray(outputs).argmax(1) == np.asarray(labels)).mean())


def _transform(original: bytes, inputs, labels, per_tensor):
    """Fold the pixel map, optionally go per-tensor; (model bytes, fold info, per-tensor info)."""
    folded, fold_info = fold.fold_pixel_map(original)
    tflm.check_ops(fold.op_names(fold.read_model(folded)))
    if fold_info["folded"]:
        fold_info["check"] = _fold_check(original, folded, inputs)
    if not per_tensor:
        return folded, fold_info, None
    if per_tensor not in PER_TENSOR_CHOICES:
        raise KvasirError(f"per_tensor={per_tensor!r}: use one of {', '.join(PER_TENSOR_CHOICES)}")
    model, info = per_tensor_lib.to_per_tensor(folded, PER_TENSOR_CHOICES[per_tensor])
    a, b = tflm.run_reference(folded, inputs), tflm.run_reference(model, inputs)
    info.update(mode=per_tensor, per_channel_bytes=len(folded), saved_bytes=len(folded) - len(model),
                top1_agreement=float((a.argmax(1) == b.argmax(1)).mean()),
                per_channel_accuracy=_accuracy(a, labels))
    return model, fold_info, info


def export_micro(source, out_dir, board: str = "nano33ble", *, data_dir=None, images=None, labels=None,
                 force: bool = False, code_bytes: int = 0, per_tensor: str | None = None,
                 tflm_tolerance: int = tflm.TOLERANCE_STEPS, tflm_min_top1: float = tflm.MIN_TOP1_AGREEMENT,
                 strict: bool = False) -> dict:
    """Export for ``board``; ``source`` is a run directory or an int8 .tflite with its sidecar
    (then pass test ``images`` uint8 [N, S, S, 3], optionally ``labels``). ``per_tensor``: None,
    "all" or "pointwise" (see :mod:`.per_tensor`). TFLM's outputs must be within ``tflm_tolerance``
    int8 steps of LiteRT's reference kernels with the same top-1 on ``tflm_min_top1`` of the images
    (``strict``: bit exact); see :func:`.tflm.gate`. Returns the summary.

    More than eight options because each is one ``kvasir-micro`` flag the CLI passes through
    one for one (and tests call with); a request object would only repeat the parser."""
    source, out_dir = Path(source), Path(out_dir)
    budgets.board_spec(board)
    existing = [p for p in _outputs(out_dir) if p.exists()]
    if existing and not force:
        raise KvasirError(f"{existing[0]} exists; pass --force to overwrite the micro export in {out_dir}")
    with tempfile.TemporaryDirectory(prefix="kvasir_micro_") as tmp:
        tmp = Path(tmp)
        path, side, images, labels = _source(source, tmp, data_dir, images, labels)
        size, scale, zero_point = dp.input_map(side)
        frame = budgets.frame_spec(board, size)
        inputs = dp.quantize(images, scale, zero_point)
        model, fold_info, pt_info = _transform(path.read_bytes(), inputs, labels, per_tensor)
        (tmp / MODEL_NAME).write_bytes(model)
        arena = tflm.smallest_arena(tmp / MODEL_NAME)
        if fold_info["folded"]:
            fold_info["arena_saved_bytes"] = tflm.smallest_arena(path)["minimum_bytes"] - arena["minimum_bytes"]
        check = tflm.gate(tflm.compare_tflm(model, inputs, arena["minimum_bytes"]), source,
                          tflm_tolerance, tflm_min_top1, strict)
        report = budgets.check_budget(board, model_bytes=len(model), arena_bytes=arena["arena_bytes"],
                                      frame=frame, code_bytes=code_bytes)
        accuracy = _accuracy(check.pop("outputs"), labels)
        if accuracy is not None:
            check["int8_accuracy"] = accuracy
        ops = fold.op_names(fold.read_model(model))
        return _write(out_dir, model, side, ops, dict(fold_info, per_tensor=pt_info), arena, check, report, frame)


def _write(out_dir, folded, side, ops, fold_info, arena, check, report, frame) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / MODEL_NAME
    model_path.write_bytes(folded)
    micro_side = dict(side, tflite=MODEL_NAME, sha256=artifact.sha256_file(model_path),
                      size_bytes=len(folded), ops={op: ops.count(op) for op in sorted(set(ops))})
    if fold_info.get("per_tensor"):
        micro_side["weight_granularity"] = f"per-tensor ({fold_info['per_tensor']['mode']})"
    micro_side["micro"] = {"fold": fold_info, "arena": arena, "board": report["board"],
                           "input_tensor_quantization": (
                               {"scale": fold_info["input_tensor_scale"], "zero_point": 0,
                                "note": "differs from the pixel map 'input': the pixel map is folded into "
                                        "the first conv; send q = p - 128 as the sidecar's input says"}
                               if fold_info["folded"] else None)}
    (out_dir / "model_micro.json").write_text(json.dumps(micro_side, indent=1))
    (out_dir / artifact.LABELS_NAME).write_text(artifact.labels_text(side["class_names"]))
    header, body = artifact.c_array_sources(folded, "model_micro.json", MODEL_NAME)
    (out_dir / "model_data.h").write_text(header)
    (out_dir / "model_data.cc").write_text(body)
    h, cc = codegen.model_settings_sources(micro_side, arena_bytes=arena, board=budgets.BOARDS[report["board"]],
                                           frame=frame)
    (out_dir / "model_settings.h").write_text(h)
    (out_dir / "model_settings.cc").write_text(cc)
    (out_dir / codegen.RESOLVER_NAME).write_text(codegen.op_resolver_header(ops, MODEL_NAME))
    (out_dir / "budget.json").write_text(json.dumps(report, indent=1))
    (out_dir / "budget.md").write_text(budgets.budget_markdown(report))
    summary = {"out_dir": str(out_dir), "model_bytes": len(folded), "arena": arena, "fold": fold_info,
               "tflm_check": check, "budget": report, "ops": sorted(set(ops))}
    (out_dir / "tflm_check.json").write_text(json.dumps({"tflm_check": check, "fold": fold_info}, indent=1))
    return summary
