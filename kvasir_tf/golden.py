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

from kvasir_tf import confidence
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


CONFIDENCE_FILE = "confidence.tsv"
CONFIDENCE_HEADER = ("name", "output_scale", "output_zero_point", "temperature", "abstain_below",
                     "scores", "probabilities", "decision")


def write_confidence_golden(out_dir, cases) -> Path:
    """``confidence.tsv``: per case an int8 output, its output map, a temperature and an abstain
    threshold ("none" for never), with :mod:`kvasir_tf.confidence`'s probabilities (%.9g) and
    decision (class, or -1 for "uncertain"). ``cases``: {name: (scores, scale, zero_point, T,
    abstain_below or None)}; thresholds within 1e-4 of the top probability are refused, so a
    float32 device and this float64 reference cannot decide differently."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = ["\t".join(CONFIDENCE_HEADER)]
    for name, (scores, scale, zp, t, below) in cases.items():
        q = np.asarray(scores, np.int8).reshape(-1)
        p = confidence.device_probabilities(q, scale, zp, t)
        if below is not None and abs(p.max() - below) < 1e-4:
            raise ValueError(f"case {name}: threshold {below} is within 1e-4 of {p.max()}")
        decision = int(confidence.decide(p, below)[0])
        rows.append("\t".join((name, repr(float(scale)), str(int(zp)), repr(float(t)),
                               "none" if below is None else repr(float(below)),
                               ",".join(str(int(v)) for v in q), ",".join(f"{v:.9g}" for v in p),
                               str(decision))))
    path = out / CONFIDENCE_FILE
    path.write_text("\n".join(rows) + "\n")
    return path


def confidence_cases(num_classes: int = 8, seed: int = 0) -> dict:
    """Outputs a device meets: a near one-hot, a flat one, ties, zeros, and random softmaxes on
    the int8 grid (scale 1/256, zero point -128), at several temperatures and thresholds."""
    rng = np.random.default_rng(seed)
    c = int(num_classes)
    onehot = np.full(c, -128)
    onehot[2] = 127
    flat = np.full(c, -128 + 256 // c)
    tie = np.full(c, -128)
    tie[[1, 4]] = 0
    outputs = {"onehot": onehot, "flat": flat, "tie": tie}
    for i in range(5):
        p = rng.dirichlet(np.full(c, 0.3 + i))
        outputs[f"random{i}"] = np.clip(np.round(p * 256) - 128, -128, 127)
    cases = {}
    for oname, q in outputs.items():
        for t in (0.5, 1.0, 1.7, 3.0):
            top = confidence.device_probabilities(q, 1 / 256, -128, t).max()
            for below in (None, top - 0.05, top + 0.05):
                if below is not None and not 0.0 < below < 1.0:
                    continue
                label = "none" if below is None else ("below" if below < top else "above")
                cases[f"{oname}_t{t}_{label}"] = (q, 1 / 256, -128, t,
                                                  None if below is None else round(float(below), 6))
    return cases
