// The firmware's serial lines, exactly the format kvasir_tf/device_logs.py parses:
//   KVASIR model=<sha256 prefix> input=<S>x<S> arena_bytes=<n>
//   KVASIR class=<name> idx=<i> conf=<0..1> latency_us=<int> frame=<n>
// No printf("%f"): newlib-nano (Arduino, ESP-IDF's default) drops float formatting.
#ifndef KVASIR_SERIAL_REPORT_H_
#define KVASIR_SERIAL_REPORT_H_

#include <stddef.h>
#include <stdint.h>

namespace kvasir {

constexpr char kSerialTag[] = "KVASIR";
constexpr size_t kReportLineBytes = 160;

// Each returns the line's length without a newline (snprintf's), or -1 when `size` is too small.
int FormatHeader(char* buf, size_t size, const char* model_sha, int input_size, long arena_bytes);
int FormatResult(char* buf, size_t size, const char* label, int index, float confidence,
                 uint32_t latency_us, long frame);

}  // namespace kvasir

#endif  // KVASIR_SERIAL_REPORT_H_
