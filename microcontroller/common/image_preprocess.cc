// See image_preprocess.h; every step mirrors kvasir_tf/device_preprocessing.py.
#include "image_preprocess.h"

#include <math.h>

namespace kvasir {
namespace {

inline uint8_t ClampU8(int32_t v) { return v < 0 ? 0 : (v > 255 ? 255 : static_cast<uint8_t>(v)); }

// Arithmetic shift right = floor division by 2^n, as numpy's >> on signed ints.
inline int32_t FloorShift8(int32_t v) { return v >= 0 ? (v >> 8) : -((-v + 255) >> 8); }

// Step 1: the RGB888 colour of pixel (y, x) of the frame.
inline void PixelAt(const uint8_t* frame, PixelFormat format, int width, int y, int x, int32_t rgb[3]) {
  const size_t i = static_cast<size_t>(y) * width + x;
  switch (format) {
    case PixelFormat::kRgb888:
      rgb[0] = frame[3 * i];
      rgb[1] = frame[3 * i + 1];
      rgb[2] = frame[3 * i + 2];
      return;
    case PixelFormat::kRgb565:
    case PixelFormat::kRgb565Be: {
      const uint8_t lo = frame[2 * i + (format == PixelFormat::kRgb565 ? 0 : 1)];
      const uint8_t hi = frame[2 * i + (format == PixelFormat::kRgb565 ? 1 : 0)];
      const uint32_t w = (static_cast<uint32_t>(hi) << 8) | lo;
      const uint32_t r5 = (w >> 11) & 0x1F, g6 = (w >> 5) & 0x3F, b5 = w & 0x1F;
      rgb[0] = static_cast<int32_t>((r5 << 3) | (r5 >> 2));
      rgb[1] = static_cast<int32_t>((g6 << 2) | (g6 >> 4));
      rgb[2] = static_cast<int32_t>((b5 << 3) | (b5 >> 2));
      return;
    }
    case PixelFormat::kYuyv: {
      const size_t row = static_cast<size_t>(y) * width;
      const int32_t yy = frame[2 * i];
      const int32_t u = frame[2 * (row + (x & ~1)) + 1];
      const int32_t v = frame[2 * (row + (x | 1)) + 1];
      const int32_t c = 298 * (yy - 16), d = u - 128, e = v - 128;
      rgb[0] = ClampU8(FloorShift8(c + 409 * e + 128));
      rgb[1] = ClampU8(FloorShift8(c - 100 * d - 208 * e + 128));
      rgb[2] = ClampU8(FloorShift8(c + 516 * d + 128));
      return;
    }
  }
}

// Step 3's box of output index i: source [start, end).
inline void BoxBounds(int src, int dst, int i, int* start, int* end) {
  *start = static_cast<int>(static_cast<int64_t>(i) * src / dst);
  const int e = static_cast<int>(static_cast<int64_t>(i + 1) * src / dst);
  *end = e > *start + 1 ? e : *start + 1;
}

bool SizeOk(PixelFormat format, int height, int width, int size) {
  if (height < 1 || width < 1 || size < 1) return false;
  return format != PixelFormat::kYuyv || width % 2 == 0;
}

}  // namespace

size_t FrameBytes(PixelFormat format, int height, int width) {
  if (!SizeOk(format, height, width, 1)) return 0;
  const size_t n = static_cast<size_t>(height) * width;
  return format == PixelFormat::kRgb888 ? 3 * n : 2 * n;
}

PreprocessStatus FrameToPixels(const uint8_t* frame, PixelFormat format, int height, int width,
                               int size, uint8_t* out) {
  if (frame == nullptr || out == nullptr) return PreprocessStatus::kNullBuffer;
  if (!SizeOk(format, height, width, size)) return PreprocessStatus::kBadFrameSize;
  // Step 2: the centred square.
  const int s = height < width ? height : width;
  const int y0 = (height - s) / 2, x0 = (width - s) / 2;
  for (int oy = 0; oy < size; ++oy) {
    int ys, ye;
    BoxBounds(s, size, oy, &ys, &ye);
    for (int ox = 0; ox < size; ++ox) {
      int xs, xe;
      BoxBounds(s, size, ox, &xs, &xe);
      int64_t sum[3] = {0, 0, 0};
      for (int y = ys; y < ye; ++y) {
        for (int x = xs; x < xe; ++x) {
          int32_t rgb[3] = {0, 0, 0};
          PixelAt(frame, format, width, y0 + y, x0 + x, rgb);
          sum[0] += rgb[0];
          sum[1] += rgb[1];
          sum[2] += rgb[2];
        }
      }
      const int64_t n = static_cast<int64_t>(ye - ys) * (xe - xs);
      uint8_t* px = out + 3 * (static_cast<size_t>(oy) * size + ox);
      for (int c = 0; c < 3; ++c) px[c] = static_cast<uint8_t>((sum[c] + n / 2) / n);  // half up
    }
  }
  return PreprocessStatus::kOk;
}

void QuantizePixels(const uint8_t* pixels, size_t count, float scale, int zero_point, int8_t* out) {
  const bool unit = scale == 1.0f;
  for (size_t i = 0; i < count; ++i) {
    // float32 arithmetic exactly as the reference: floor(p / scale + 0.5) + zero_point.
    const int32_t q = unit ? static_cast<int32_t>(pixels[i]) + zero_point
                           : static_cast<int32_t>(floorf(static_cast<float>(pixels[i]) / scale + 0.5f)) + zero_point;
    out[i] = static_cast<int8_t>(q < -128 ? -128 : (q > 127 ? 127 : q));
  }
}

PreprocessStatus PreprocessFrame(const uint8_t* frame, PixelFormat format, int height, int width,
                                 int size, float scale, int zero_point, int8_t* out) {
  // The pixels go into the int8 buffer itself (same byte count), then are quantized in place.
  uint8_t* pixels = reinterpret_cast<uint8_t*>(out);
  const PreprocessStatus status = FrameToPixels(frame, format, height, width, size, pixels);
  if (status != PreprocessStatus::kOk) return status;
  QuantizePixels(pixels, static_cast<size_t>(size) * size * 3, scale, zero_point, out);
  return PreprocessStatus::kOk;
}

}  // namespace kvasir
