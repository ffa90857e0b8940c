// platform.h for the Nano 33 BLE Sense: USB serial, micros(), a static arena in the 256 KB SRAM.
#include <Arduino.h>

#include "src/model_settings.h"
#include "src/platform.h"

namespace {
alignas(16) uint8_t tensor_arena[kTensorArenaSize];
}  // namespace

namespace kvasir {

void WriteLine(const char* line) { Serial.println(line); }

uint32_t MicrosNow() { return micros(); }

uint8_t* AllocateArena(size_t bytes) {
  if (!Serial) {
    Serial.begin(115200);       // kvasir_tf.device_logs.DEFAULT_BAUD
    const uint32_t start = millis();
    while (!Serial && millis() - start < 3000) {
    }
  }
  return bytes <= sizeof(tensor_arena) ? tensor_arena : nullptr;
}

}  // namespace kvasir
