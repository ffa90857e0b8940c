// Cortex-M4F size probe (tests/test_micro_arm.py): links common/ and the generated model files
// with the buffers the firmware holds -- the tensor arena and one camera frame -- so
// arm-none-eabi-size reports the flash (text + data) and RAM (data + bss) they take without TFLM.
// Not firmware: the board builds in ../../esp32s3 and ../../nano33ble add TFLM and the camera.
#include <stdint.h>
#include <stdio.h>

#include "image_preprocess.h"
#include "model_data.h"
#include "model_settings.h"
#include "serial_report.h"
#include "top_k.h"

alignas(16) static uint8_t tensor_arena[kTensorArenaSize];
alignas(4) static uint8_t frame_buffer[kFrameBytes];

int main() {
  // The input tensor lives in the arena on the board; here its first bytes stand in for it.
  int8_t* input = reinterpret_cast<int8_t*>(tensor_arena);
  kvasir::PreprocessFrame(frame_buffer, kvasir::PixelFormat::kRgb565, kFrameHeight, kFrameWidth,
                          kNumCols, kInputScale, kInputZeroPoint, input);
  int best[3];
  const int8_t* scores = reinterpret_cast<const int8_t*>(g_model_data) + (g_model_data_len % 97);
  const int k = kvasir::TopK(scores, kCategoryCount, 3, best);
  char line[kvasir::kReportLineBytes];
  kvasir::FormatHeader(line, sizeof(line), kModelSha, kNumCols, static_cast<long>(kTensorArenaSize));
  puts(line);
  if (k > 0) {
    kvasir::FormatResult(line, sizeof(line), kCategoryLabels[best[0]], best[0],
                         kvasir::Dequantize(scores[best[0]], kOutputScale, kOutputZeroPoint), 0u, 0);
    puts(line);
  }
  return tensor_arena[kTensorArenaSize - 1] + frame_buffer[kFrameBytes - 1];
}
