"""Golden vectors for the device implementations (C++ firmware, Kotlin core), from the Python reference.

A golden folder holds ``cases.tsv`` and two or three raw files per case, so a C++ or Kotlin test
reads it with no JSON or image library:

    cases.tsv   one header line, then: name  format  height  width  size  scale  zero_point
                top1  num_classes  output_scale  output_zero_point
    NAME.frame  the camera frame as the device gets it: rgb888 bytes RGBRGB..., rgb565 16-bit words
                little-endian (the host order of both boards), or yuyv bytes Y0 U Y1 V
    NAME.input  the int8 model input [size, size, 3] from :mod:`kvasir_tf.device_preprocessing`
    NAME.output the int8 output tensor for that input (when a model was given), else absent;
                ``top1`` is its argmax (lowest index on ties), -1 without a model
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kvasir_tf import device_preprocessing as dp

HEADER = ("name", "format", "height", "width", "size", "scale", "zero_point", "top1",
          "num_classes", "output_scale", "output_zero_point")


def frame_bytes(frame: np.ndarray, fmt: str) -> bytes:
    if fmt == "rgb565":
        return np.asarray(frame, "<u2").tobytes()
    return np.ascontiguousarray(frame, np.uint8).tobytes()


def camera_frames(rgb: np.ndarray, height: int, width: int) -> dict:
    """One real image as each camera format at ``height x width`` (what a board's camera would give)."""
    import cv2
    img = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return {"rgb888": img, "rgb565": dp.rgb888_to_rgb565(img), "yuyv": dp.rgb888_to_yuyv(img)}


def top1(values: np.ndarray) -> int:
    """Argmax, lowest index on ties: the rule every device implementation follows."""
    return int(np.argmax(np.asarray(values).reshape(-1)))


def write_golden(out_dir, cases, *, size: int, scale: float = 1.0, zero_point: int = -128,
                 run_model=None, output_map=(1.0 / 256.0, -128)) -> Path:
    """Write ``cases`` ({name: (frame, fmt)}) with their int8 inputs (and outputs via ``run_model``).

    ``run_model``: int8 input [1, S, S, 3] -> int8 output [1, C], e.g. the TFLite interpreter.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = ["\t".join(HEADER)]
    for name, (frame, fmt) in cases.items():
        q = dp.frame_to_input(frame, fmt, size, scale, zero_point)
        (out / f"{name}.frame").write_bytes(frame_bytes(frame, fmt))
        (out / f"{name}.input").write_bytes(q.tobytes())
        h, w = np.asarray(frame).shape[:2]
        best, n = -1, 0
        if run_model is not None:
            y = np.asarray(run_model(q[None])).astype(np.int8).reshape(-1)
            (out / f"{name}.output").write_bytes(y.tobytes())
            best, n = top1(y), len(y)
        rows.append("\t".join(str(v) for v in (name, fmt, h, w, size, repr(float(scale)), zero_point,
                                               best, n, repr(float(output_map[0])), output_map[1])))
    (out / "cases.tsv").write_text("\n".join(rows) + "\n")
    return out
