// Cortex-M4F size probe (tests/test_micro.py): links common/ (everything but the TFLM-facing
// main_functions.cc) and the generated model files with the buffers the firmware holds -- the
// tensor arena and one camera frame -- so arm-none-eabi-size reports the flash (text + data) and
// RAM (data + bss) they take without TFLM. Not firmware: the board builds add TFLM and the camera.
#include <stdint.h>
#include <stdio.h>

#include "detection_responder.h"
#include "image_preprocess.h"
#include "model_data.h"
#include "model_settings.h"
#include "platform.h"

alignas(16) static uint8_t tensor_arena[kTensorArenaSize];
alignas(4) static uint8_t frame_buffer[kFrameBytes];

namespace kvasir {
void WriteLine(const char* line) { puts(line); }
uint32_t MicrosNow() { return 0; }
uint8_t* AllocateArena(size_t bytes) { return bytes <= sizeof(tensor_arena) ? tensor_arena : nullptr; }
}  // namespace kvasir

int main() {
  // On the board the input tensor lives in the arena; here its first bytes stand in for it.
  int8_t* input = reinterpret_cast<int8_t*>(kvasir::AllocateArena(kTensorArenaSize));
  kvasir::PreprocessFrame(frame_buffer, kvasir::PixelFormat::kRgb565Be, kFrameHeight, kFrameWidth,
                          kNumCols, kInputScale, kInputZeroPoint, input);
  RespondHeader(kTensorArenaSize);
  // Scores from the model bytes, so the linker keeps g_model_data as the firmware would.
  const int8_t* scores = reinterpret_cast<const int8_t*>(g_model_data) + (g_model_data_len % 97);
  RespondToDetection(scores, kvasir::MicrosNow(), 0);
  return input[0] + frame_buffer[kFrameBytes - 1];
}
