#include "serial_report.h"

#include <stdio.h>

namespace kvasir {
namespace {

int Checked(int n, size_t size) { return (n < 0 || static_cast<size_t>(n) >= size) ? -1 : n; }

}  // namespace

int FormatHeader(char* buf, size_t size, const char* model_sha, int input_size, long arena_bytes) {
  return Checked(snprintf(buf, size, "%s model=%s input=%dx%d arena_bytes=%ld", kSerialTag,
                          model_sha, input_size, input_size, arena_bytes), size);
}

int FormatResult(char* buf, size_t size, const char* label, int index, float confidence,
                 uint32_t latency_us, long frame) {
  // Confidence in thousandths, clamped to [0, 1] and printed with integers only.
  float c = confidence < 0.0f ? 0.0f : (confidence > 1.0f ? 1.0f : confidence);
  const int milli = static_cast<int>(c * 1000.0f + 0.5f);
  return Checked(snprintf(buf, size, "%s class=%s idx=%d conf=%d.%03d latency_us=%lu frame=%ld",
                          kSerialTag, label, index, milli / 1000, milli % 1000,
                          static_cast<unsigned long>(latency_us), frame), size);
}

}  // namespace kvasir
