"""The one pixel map shared by training, conversion, the Android app and the firmware.

Images travel through the data pipeline as raw RGB pixels ``p`` (float32 holding
integers 0..255). The model itself starts with :func:`preprocess`, so every exported
model -- Keras, float TFLite, int8 TFLite, TFLite Micro -- takes raw camera pixels:

    x = p * PIXEL_SCALE + PIXEL_OFFSET = p / 127.5 - 1        (x in [-1, 1])

This is MobileNetV2's own preprocessing, so ``weights="imagenet"`` stays valid.
For the full-integer model the input tensor is int8 with scale 1 and zero point -128
over the pixel range [0, 255], i.e. ``q = p - 128``: a device feeds ``(int8)(p ^ 0x80)``.
The converter writes the actual scale/zero point into the model's JSON sidecar; the
app and firmware read it from there.
"""
import numpy as np

PIXEL_MIN = 0.0
PIXEL_MAX = 255.0
PIXEL_SCALE = 1.0 / 127.5
PIXEL_OFFSET = -1.0

# int8 input map over [PIXEL_MIN, PIXEL_MAX]: q = round(p / INPUT_INT8_SCALE) + INPUT_INT8_ZERO_POINT
INPUT_INT8_SCALE = (PIXEL_MAX - PIXEL_MIN) / 255.0
INPUT_INT8_ZERO_POINT = -128

# The model's input space value 0 (mid grey), used as a neutral mask value.
NEUTRAL_PIXEL = -PIXEL_OFFSET / PIXEL_SCALE  # 127.5


def preprocess(pixels):
    """Raw pixels (0..255) to model input (-1..1); works on numpy arrays and tf tensors."""
    return pixels * PIXEL_SCALE + PIXEL_OFFSET


def pixels_to_int8(pixels: np.ndarray, scale: float = INPUT_INT8_SCALE,
                   zero_point: int = INPUT_INT8_ZERO_POINT) -> np.ndarray:
    """Quantize raw uint8/float pixels for an int8 model input with the given parameters."""
    q = np.round(np.asarray(pixels, dtype=np.float32) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)
