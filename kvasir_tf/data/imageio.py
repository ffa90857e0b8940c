"""Robust decode of one image file to RGB uint8, and the one resize every tool uses.

A bad file must produce a :class:`DataError` naming it, never a crash or a silently
grey image: truncated JPEGs are detected by their missing end-of-image marker (libjpeg
would otherwise pad them with grey), PNGs by libpng's own checks.
"""
from pathlib import Path

import cv2
import numpy as np

from kvasir_tf.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

# Larger than any endoscopy frame by far (Kvasir tops out at 1920x1072 = 2 MP); decoding
# a 64 MP image needs ~200 MB and seconds, and usually means a wrong file in the folder.
MAX_PIXELS = 50_000_000

# Dataset images whose shorter side is below this are skipped (discovery) or dropped (pipeline).
# The shorter side is what counts: the centre-square crop (:func:`resize`) is that side squared,
# so a 4000x12 sliver gives a 12x12 crop. 16 px is half of the smallest model input this project
# builds (kvasir_tf.model.MIN_IMAGE_SIZE = 32): below it even the smallest model sees a >2x
# upscaled blur, the 224-px default a >14x one, i.e. interpolation artefacts instead of tissue.
# Real frames are >= 332 px and the patch builder writes >= 16 px, so only thumbnails, icons and
# broken exports fall below it. An absolute threshold rather than one relative to the model input:
# discovery does not know the input size, and the split must not depend on it.
MIN_IMAGE_SIDE = 16
TOO_SMALL = "image too small"  # start of the reason, so discovery can count these apart

_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_TAIL = 1024  # bytes of file end inspected for the end marker


def _fail(path, what, fix="remove or replace it"):
    raise DataError(f"{path}: {what}; {fix}")


def _read_failed(path, exc: OSError):
    if isinstance(exc, FileNotFoundError):
        _fail(path, "file not found (deleted or moved since the dataset was indexed?)",
              "restore it, or re-index the dataset and make a new split (re-run training or "
              "`kvasir-data split`)")
    _fail(path, f"cannot read file ({exc.strerror or exc})", "check permissions")


def _header_size(data: bytes):
    """(width, height) from a JPEG/PNG/BMP header without decoding, or None if unknown."""
    if data.startswith(_PNG_SIG) and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"BM") and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
        # BITMAPINFOHEADER and later: signed 32-bit, negative height = rows stored top-down
        w = int.from_bytes(data[18:22], "little", signed=True)
        return abs(w), abs(int.from_bytes(data[22:26], "little", signed=True))
    if data.startswith(_JPEG_SOI):
        i, n = 2, len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            seg_len = int.from_bytes(data[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h = int.from_bytes(data[i + 5:i + 7], "big")
                w = int.from_bytes(data[i + 7:i + 9], "big")
                return w, h
            i += 2 + seg_len
    return None


def check_header(path, head: bytes, tail: bytes, file_size: int):
    """Cheap validity checks on the first/last bytes of a file; raises DataError.

    Used by discovery so a dataset scan costs a few KB per file, not a decode.
    """
    if file_size == 0:
        _fail(path, "empty file (0 bytes)", "re-copy or delete it")
    if head.startswith(_JPEG_SOI):
        # In entropy-coded data 0xFF is always followed by 0x00 or RSTn, so FF D9 near the
        # end can only be the real end-of-image marker (some encoders pad after it).
        if _JPEG_EOI not in tail:
            _fail(path, "truncated JPEG (no end-of-image marker)", "re-copy or re-download it, or delete it")
    elif head.startswith(_PNG_SIG):
        if b"IEND" not in tail[-64:]:
            _fail(path, "truncated PNG (no IEND chunk)", "re-copy or re-download it, or delete it")
    elif not (head[:2] == b"BM" or head[:4] in (b"II*\x00", b"MM\x00*")):
        _fail(path, "not an image (unknown file signature)", "remove it from the class folder")
    size = _header_size(head)
    if size is not None:
        w, h = size
        if w == 0 or h == 0:
            _fail(path, "corrupt image header (zero width or height)")
        if w * h > MAX_PIXELS:
            _fail(path, f"image too large ({w}x{h} = {w * h / 1e6:.0f} MP > {MAX_PIXELS / 1e6:.0f} MP)",
                  "downscale it first (e.g. `convert in.jpg -resize 1920x1920 out.jpg`) or remove it")
    return size


def check_min_side(path, size) -> None:
    """Raise DataError when ``size`` (width, height) has a side below :data:`MIN_IMAGE_SIDE`.

    ``None`` (size unknown from the header) passes; the pipeline checks again after decoding.
    """
    if size is None or min(size) >= MIN_IMAGE_SIDE:
        return
    w, h = size
    _fail(path, f"{TOO_SMALL} ({w}x{h}: shorter side {min(w, h)} px < {MIN_IMAGE_SIDE} px; it would "
          "be upscaled into a blur)", "remove it from the class folder")


def header_size(path):
    """(width, height) read from a JPEG/PNG/BMP header (no decode), or None."""
    try:
        with open(path, "rb") as f:
            return _header_size(f.read(65536))
    except OSError:
        return None


def check_file(path):
    """Header-only validation of one file (see :func:`check_header`); its (width, height) or None."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(65536)
            f.seek(max(0, size - _TAIL))
            tail = f.read(_TAIL)
    except OSError as exc:
        _read_failed(path, exc)
    return check_header(path, head, tail, size)


def read_rgb(path) -> np.ndarray:
    """Decode a JPEG/PNG/BMP/TIFF file to an (H, W, 3) uint8 RGB array.

    Greyscale is replicated to 3 channels, alpha is dropped, 16-bit is scaled to 8-bit.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        _read_failed(path, exc)
    check_header(path, data[:65536], data[-_TAIL:], len(data))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        _fail(path, "corrupt image (could not be decoded)", "re-copy or re-download it, or delete it")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:  # formats whose header we don't parse
        _fail(path, f"image too large ({img.shape[1]}x{img.shape[0]})", "downscale it first or remove it")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating):
            img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        else:
            _fail(path, f"unsupported pixel type {img.dtype}", "convert it to 8-bit JPEG or PNG")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    _fail(path, f"unsupported channel count {img.shape[2]}", "convert it to RGB JPEG or PNG")


def center_square(img: np.ndarray) -> np.ndarray:
    """The largest centred square of an image (a view, no copy)."""
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[y:y + s, x:x + s]


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then resize to ``size`` x ``size``.

    Aspect handling: Kvasir frames are 720x576 up to 1920x1072, with the endoscope's
    circular field of view centred in the frame and black margins (plus burnt-in text
    and the ScopeGuide inset) at the sides. Cropping the centred square keeps the
    field of view (at most the circle's far left/right rim is lost) without
    distorting tissue geometry as a plain stretch would, and without the wasted
    black pixels of letterboxing. Downscaling uses INTER_AREA (pixel-area average, no
    aliasing); upscaling (small crops) uses INTER_LINEAR. The Android app and firmware
    must apply the same crop to camera frames.
    """
    sq = center_square(img)
    if sq.shape[0] == size:
        return np.ascontiguousarray(sq)
    interp = cv2.INTER_AREA if sq.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(sq, (size, size), interpolation=interp)
