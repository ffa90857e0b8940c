"""The device's preprocessing: camera frame -> the int8 model input, defined once as integers.

The firmware (``microcontroller/common/image_preprocess.cc``) and the Android app's Kotlin core
(``mobile/android/core``) implement exactly these steps; their tests compare against golden
vectors that this module writes from real images. Every step is integer arithmetic, so the three
implementations agree bit for bit:

1. colour to RGB888: ``rgb888`` as is; ``rgb565`` (16-bit words, R in the top 5 bits) by bit
   replication ``r8 = r5 << 3 | r5 >> 2``, ``g8 = g6 << 2 | g6 >> 4``; ``yuyv`` (YUV 4:2:2, bytes
   Y0 U Y1 V) by the BT.601 limited-range integer formula in :func:`yuyv_to_rgb888`.
2. crop the centred square: side ``s = min(H, W)``, origin ``((H - s) // 2, (W - s) // 2)``
   (the training pipeline's :func:`kvasir_tf.data.imageio.center_square`).
3. resize ``s x s -> S x S`` with an integer box filter: output row ``i`` averages source rows
   ``[i*s // S, max((i+1)*s // S, i*s // S + 1))``, columns likewise, rounding the mean half up
   (``(sum + n // 2) // n``). For ``s >= S`` this is an area average like OpenCV's ``INTER_AREA``
   without fractional weights; the accuracy difference is measured by ``kvasir_tf.micro``.
4. quantize with the sidecar's input map: ``q = clamp(floor(p / scale + 0.5) + zero_point, -128,
   127)``, i.e. round half up (not numpy's half-to-even); for the usual scale 1, zero point -128
   this is ``q = p - 128``.
"""
from __future__ import annotations

import numpy as np

from kvasir_tf.errors import KvasirError

FORMATS = ("rgb888", "rgb565", "yuyv")
INT8_MIN, INT8_MAX = -128, 127


def rgb565_to_rgb888(words: np.ndarray) -> np.ndarray:
    """uint16 [H, W] RGB565 words -> uint8 [H, W, 3] by bit replication."""
    w = np.asarray(words).astype(np.uint16)
    r5, g6, b5 = (w >> 11) & 0x1F, (w >> 5) & 0x3F, w & 0x1F
    rgb = np.stack([(r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4), (b5 << 3) | (b5 >> 2)], axis=-1)
    return rgb.astype(np.uint8)


def rgb888_to_rgb565(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint16 [H, W] RGB565 (truncating), to make camera-like test frames."""
    c = np.asarray(rgb, np.uint16)
    return ((c[..., 0] >> 3) << 11 | (c[..., 1] >> 2) << 5 | (c[..., 2] >> 3)).astype(np.uint16)


def _clamp_u8(v):
    return np.clip(v, 0, 255).astype(np.uint8)


def yuyv_to_rgb888(yuyv: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 2] YUYV (Y0 U0 Y1 V0 ...) -> uint8 [H, W, 3], BT.601 limited range, integers.

    ``c = Y - 16, d = U - 128, e = V - 128``; ``R = (298c + 409e + 128) >> 8``,
    ``G = (298c - 100d - 208e + 128) >> 8``, ``B = (298c + 516d + 128) >> 8``, clamped to 0..255
    (arithmetic shift: floor division by 256).
    """
    a = np.asarray(yuyv).astype(np.int32)
    if a.ndim != 3 or a.shape[2] != 2 or a.shape[1] % 2:
        raise KvasirError(f"a YUYV frame is [H, W, 2] bytes with an even W, got {a.shape}")
    y = a[..., 0]
    u = np.repeat(a[:, 0::2, 1], 2, axis=1)
    v = np.repeat(a[:, 1::2, 1], 2, axis=1)
    c, d, e = 298 * (y - 16), u - 128, v - 128
    return np.stack([_clamp_u8((c + 409 * e + 128) >> 8),
                     _clamp_u8((c - 100 * d - 208 * e + 128) >> 8),
                     _clamp_u8((c + 516 * d + 128) >> 8)], axis=-1)


def rgb888_to_yuyv(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> YUYV [H, W, 2] (BT.601 limited range; U, V of each pixel pair averaged),
    to make camera-like test frames: the inverse of :func:`yuyv_to_rgb888` up to rounding."""
    c = np.asarray(rgb).astype(np.int32)
    if c.shape[1] % 2:
        raise KvasirError(f"a YUYV frame needs an even width, got {c.shape[1]}")
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    out = np.empty(c.shape[:2] + (2,), np.uint8)
    out[..., 0] = _clamp_u8(y)
    out[:, 0::2, 1] = _clamp_u8((u[:, 0::2] + u[:, 1::2] + 1) >> 1)
    out[:, 1::2, 1] = _clamp_u8((v[:, 0::2] + v[:, 1::2] + 1) >> 1)
    return out


def to_rgb888(frame: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "rgb888":
        a = np.asarray(frame)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise KvasirError(f"an rgb888 frame is uint8 [H, W, 3], got {a.dtype} {a.shape}")
        return a
    if fmt == "rgb565":
        a = np.asarray(frame)
        if a.ndim != 2 or a.dtype != np.uint16:
            raise KvasirError(f"an rgb565 frame is uint16 [H, W], got {a.dtype} {a.shape}")
        return rgb565_to_rgb888(a)
    if fmt == "yuyv":
        return yuyv_to_rgb888(frame)
    raise KvasirError(f"unknown frame format {fmt!r}; use one of {', '.join(FORMATS)}")


def crop_box(height: int, width: int) -> tuple[int, int, int]:
    """(y0, x0, side) of the centred square."""
    s = min(height, width)
    return (height - s) // 2, (width - s) // 2, s


def box_bounds(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Source [start, end) of every output index of the integer box filter."""
    i = np.arange(dst, dtype=np.int64)
    start = i * src // dst
    end = np.maximum((i + 1) * src // dst, start + 1)
    return start, end


def box_resize(square: np.ndarray, size: int) -> np.ndarray:
    """uint8 [s, s, C] -> uint8 [size, size, C], the integer box filter of step 3."""
    s = square.shape[0]
    ys, ye = box_bounds(s, size)
    xs, xe = box_bounds(square.shape[1], size)
    # Integral image: the sum over any rectangle in four look-ups, exact in int64.
    ii = np.zeros((s + 1, square.shape[1] + 1, square.shape[2]), np.int64)
    ii[1:, 1:] = square.astype(np.int64).cumsum(0).cumsum(1)
    total = (ii[ye][:, xe] - ii[ys][:, xe] - ii[ye][:, xs] + ii[ys][:, xs])
    n = ((ye - ys)[:, None] * (xe - xs)[None, :])[..., None]
    return ((total + n // 2) // n).astype(np.uint8)


def quantize(pixels: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Step 4: round half up, so Kotlin and C++ (floor(x + 0.5)) give the same int8."""
    if not scale or scale <= 0:
        raise KvasirError(f"input scale {scale!r} is not a positive number; the sidecar is not an "
                          "int8 model's (convert with tools/convert.py --int8)")
    q = np.floor(np.asarray(pixels, np.float32) / np.float32(scale) + np.float32(0.5)) + int(zero_point)
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


def frame_to_pixels(frame: np.ndarray, fmt: str, size: int) -> np.ndarray:
    """Steps 1-3: a camera frame -> uint8 [size, size, 3] RGB pixels."""
    rgb = to_rgb888(frame, fmt)
    if size < 1:
        raise KvasirError(f"model input size {size} must be >= 1")
    y0, x0, s = crop_box(rgb.shape[0], rgb.shape[1])
    return box_resize(rgb[y0:y0 + s, x0:x0 + s], size)


def frame_to_input(frame: np.ndarray, fmt: str, size: int, scale: float = 1.0,
                   zero_point: int = -128) -> np.ndarray:
    """Steps 1-4: a camera frame -> the int8 model input [size, size, 3]."""
    return quantize(frame_to_pixels(frame, fmt, size), scale, zero_point)


def input_map(sidecar: dict) -> tuple[int, float, int]:
    """(image size, scale, zero point) from a model's sidecar, checked for an int8 input."""
    inp = sidecar.get("input") or {}
    if inp.get("dtype") != "int8" or inp.get("scale") is None:
        raise KvasirError(f"sidecar of {sidecar.get('tflite', '?')}: the input is {inp.get('dtype')}, "
                          "not int8; devices take the full-integer model (tools/convert.py --int8)")
    return int(sidecar["image_size"]), float(inp["scale"]), int(inp["zero_point"])
