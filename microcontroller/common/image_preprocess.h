// Camera frame -> int8 model input, the integer algorithm of kvasir_tf/device_preprocessing.py
// (its docstring is the definition; tests/test_micro_cpp.py checks this port bit for bit against
// golden vectors written by kvasir_tf.golden from real images).
#ifndef KVASIR_IMAGE_PREPROCESS_H_
#define KVASIR_IMAGE_PREPROCESS_H_

#include <stddef.h>
#include <stdint.h>

namespace kvasir {

enum class PixelFormat {
  kRgb888,     // bytes R G B R G B ...
  kRgb565,     // 16-bit words, R in the top 5 bits, little-endian in memory (ESP32, nRF52 order)
  kRgb565Be,   // the same words stored big-endian (high byte first), as some camera drivers give
  kYuyv,       // YUV 4:2:2 bytes Y0 U Y1 V (BT.601 limited range), even width
};

enum class PreprocessStatus {
  kOk = 0,
  kBadFrameSize,   // height, width or model size < 1, or an odd YUYV width
  kNullBuffer,
};

// Bytes of one frame of this format and size (0 for a bad size).
size_t FrameBytes(PixelFormat format, int height, int width);

// Crop the centred square, box-resize it to size x size and quantize with the sidecar's input map
// q = clamp(floor(p / scale + 0.5) + zero_point, -128, 127). `out` holds size * size * 3 int8
// values (HWC, RGB). Needs no memory besides `out`.
PreprocessStatus PreprocessFrame(const uint8_t* frame, PixelFormat format, int height, int width,
                                 int size, float scale, int zero_point, int8_t* out);

// The same without the quantization: RGB888 pixels, size * size * 3 bytes.
PreprocessStatus FrameToPixels(const uint8_t* frame, PixelFormat format, int height, int width,
                               int size, uint8_t* out);

// Step 4 alone, for inputs that are RGB888 already (the serial test mode's host images).
void QuantizePixels(const uint8_t* pixels, size_t count, float scale, int zero_point, int8_t* out);

}  // namespace kvasir

#endif  // KVASIR_IMAGE_PREPROCESS_H_
