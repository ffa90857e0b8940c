// Host test of common/ against the golden vectors of kvasir_tf.golden (run by tests/test_micro_cpp.py):
//   golden_test GOLDEN_DIR
// For every case of cases.tsv: preprocess NAME.frame and compare with NAME.input byte for byte;
// with NAME.output, check TopK's top-1 against the reference's and print the serial line the
// firmware would print (pytest parses them with kvasir_tf.device_logs). Exit status 1 on a mismatch.
// Also built for Cortex-M4F and run under QEMU (test/qemu/): no %zu, newlib's printf there lacks it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "image_preprocess.h"
#include "serial_report.h"
#include "top_k.h"

namespace {

bool ReadFile(const std::string& path, std::vector<uint8_t>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

bool ParseFormat(const std::string& name, kvasir::PixelFormat* format) {
  if (name == "rgb888") *format = kvasir::PixelFormat::kRgb888;
  else if (name == "rgb565") *format = kvasir::PixelFormat::kRgb565;
  else if (name == "yuyv") *format = kvasir::PixelFormat::kYuyv;
  else return false;
  return true;
}

// One case; returns false (after printing why) on a mismatch.
bool RunCase(const std::string& dir, const std::string& line, int frame_no, bool* printed_header) {
  std::istringstream row(line);
  std::string name, fmt;
  int height, width, size, zero_point, top1, num_classes, out_zero_point;
  float scale, out_scale;
  if (!(row >> name >> fmt >> height >> width >> size >> scale >> zero_point >> top1 >> num_classes >>
        out_scale >> out_zero_point)) {
    printf("FAIL bad cases.tsv line: %s\n", line.c_str());
    return false;
  }
  kvasir::PixelFormat format;
  std::vector<uint8_t> frame, expected;
  if (!ParseFormat(fmt, &format) || !ReadFile(dir + "/" + name + ".frame", &frame) ||
      !ReadFile(dir + "/" + name + ".input", &expected)) {
    printf("FAIL %s: unknown format or missing file\n", name.c_str());
    return false;
  }
  if (frame.size() != kvasir::FrameBytes(format, height, width)) {
    printf("FAIL %s: frame has %lu bytes, FrameBytes says %lu\n", name.c_str(),
           static_cast<unsigned long>(frame.size()),
           static_cast<unsigned long>(kvasir::FrameBytes(format, height, width)));
    return false;
  }
  std::vector<int8_t> input(static_cast<size_t>(size) * size * 3);
  if (kvasir::PreprocessFrame(frame.data(), format, height, width, size, scale, zero_point, input.data()) !=
      kvasir::PreprocessStatus::kOk) {
    printf("FAIL %s: PreprocessFrame refused the frame\n", name.c_str());
    return false;
  }
  if (expected.size() != input.size() || memcmp(expected.data(), input.data(), input.size()) != 0) {
    size_t first = 0;
    while (first < input.size() && first < expected.size() &&
           static_cast<uint8_t>(input[first]) == expected[first]) ++first;
    printf("FAIL %s: input differs from the reference at byte %lu\n", name.c_str(),
           static_cast<unsigned long>(first));
    return false;
  }
  if (format == kvasir::PixelFormat::kRgb565) {
    // The same words stored high byte first (esp32-camera, Arduino_OV767X) must give the same input.
    std::vector<uint8_t> swapped(frame.size());
    for (size_t i = 0; i + 1 < frame.size(); i += 2) {
      swapped[i] = frame[i + 1];
      swapped[i + 1] = frame[i];
    }
    std::vector<int8_t> be(input.size());
    kvasir::PreprocessFrame(swapped.data(), kvasir::PixelFormat::kRgb565Be, height, width, size, scale,
                            zero_point, be.data());
    if (be != input) {
      printf("FAIL %s: the big-endian RGB565 path differs\n", name.c_str());
      return false;
    }
  }
  printf("ok %s input %dx%d %s\n", name.c_str(), width, height, fmt.c_str());
  if (top1 < 0) return true;
  std::vector<uint8_t> output;
  if (!ReadFile(dir + "/" + name + ".output", &output) || static_cast<int>(output.size()) != num_classes) {
    printf("FAIL %s: .output missing or not %d values\n", name.c_str(), num_classes);
    return false;
  }
  const int8_t* scores = reinterpret_cast<const int8_t*>(output.data());
  int best[3];
  const int k = kvasir::TopK(scores, num_classes, 3, best);
  if (k < 1 || best[0] != top1) {
    printf("FAIL %s: top-1 %d, the reference says %d\n", name.c_str(), k ? best[0] : -1, top1);
    return false;
  }
  char buf[kvasir::kReportLineBytes];
  if (!*printed_header) {
    kvasir::FormatHeader(buf, sizeof(buf), "golden", size, 0);
    printf("%s\n", buf);
    *printed_header = true;
  }
  std::string label = "class" + std::to_string(best[0]);
  const float conf = kvasir::Dequantize(scores[best[0]], out_scale, out_zero_point);
  if (kvasir::FormatResult(buf, sizeof(buf), label.c_str(), best[0], conf, 1000u + frame_no, frame_no) < 0) {
    printf("FAIL %s: the result line does not fit %lu bytes\n", name.c_str(),
           static_cast<unsigned long>(sizeof(buf)));
    return false;
  }
  printf("%s\n", buf);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::ifstream cases(dir + "/cases.tsv");
  if (!cases) {
    fprintf(stderr, "error: %s/cases.tsv not found; write it with kvasir_tf.golden.write_golden\n", argv[1]);
    return 2;
  }
  std::string line;
  std::getline(cases, line);  // header
  int n = 0, failed = 0;
  bool printed_header = false;
  while (std::getline(cases, line)) {
    if (line.empty()) continue;
    failed += RunCase(dir, line, n, &printed_header) ? 0 : 1;
    ++n;
  }
  printf("%d cases, %d failed\n", n, failed);
  return failed || n == 0 ? 1 : 0;
}
