// platform.h for the Nano 33 BLE Sense: USB serial, micros(), a static arena in the 256 KB SRAM.
#include <Arduino.h>

#include "src/model_settings.h"
#include "src/platform.h"

namespace {
constexpr unsigned long kSerialBaud = 115200;   // kvasir_tf.device_logs.DEFAULT_BAUD
constexpr uint32_t kSerialWaitMs = 3000;
alignas(16) uint8_t tensor_arena[kTensorArenaSize];
}  // namespace

namespace kvasir {

// tflite::InitializeTarget() may have opened the USB serial port already (Arduino_TensorFlowLite's
// src/tensorflow/lite/micro/system_setup.cpp); begin() again sets this project's baud rate. Waits up
// to kSerialWaitMs for a host to open the port, then runs without one.
void BeginSerial() {
  Serial.begin(kSerialBaud);
  const uint32_t start = millis();
  while (!Serial && millis() - start < kSerialWaitMs) {
  }
}

void WriteLine(const char* line) { Serial.println(line); }

uint32_t MicrosNow() { return micros(); }

uint8_t* AllocateArena(size_t bytes) { return bytes <= sizeof(tensor_arena) ? tensor_arena : nullptr; }

}  // namespace kvasir
