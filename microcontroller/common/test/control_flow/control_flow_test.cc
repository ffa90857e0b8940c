// Host control-flow test of main_functions.cc (tests/test_firmware_control_flow.py): setup() and
// loop() built with the generated model_settings/model_data/op resolver, the real
// detection_responder/serial_report/top_k, and fakes of TFLM (fake_tflm.h), platform.h and
// image_provider.h. `control_flow_test SCENARIO` makes one call fail (or none: "ok"), runs setup()
// and two loop()s and prints every call as "EVENT <name>" and every serial line as "LINE <text>", or
// "LOST <text>" when it was written before the port was opened (a board drops those).
#include <stdio.h>
#include <string.h>

#include "fake_tflm.h"
#include "image_provider.h"
#include "main_functions.h"
#include "model_settings.h"
#include "platform.h"

namespace {

const char* scenario = "ok";
bool serial_open = false;
uint32_t clock_us = 0;
alignas(16) uint8_t arena[kTensorArenaSize];
int8_t output_scores[kCategoryCount];

}  // namespace

namespace fake {

void Event(const char* what) { printf("EVENT %s\n", what); }

bool Fails(const char* what) { return strcmp(scenario, what) == 0; }

}  // namespace fake

namespace tflite {

// The input tensor lives in the arena, as in TFLM; type and size wrong in their scenarios.
FakeTensors& Tensors() {
  static FakeTensors tensors;
  tensors.input.type = fake::Fails("input_type") ? kTfLiteFloat32 : kTfLiteInt8;
  tensors.input.bytes = kMaxImageSize + (fake::Fails("input_size") ? 1 : 0);
  tensors.input.data.int8 = reinterpret_cast<int8_t*>(arena);
  tensors.output.type = kTfLiteInt8;
  tensors.output.bytes = kCategoryCount;
  tensors.output.data.int8 = output_scores;
  return tensors;
}

}  // namespace tflite

namespace kvasir {

void BeginSerial() {
  fake::Event("BeginSerial");
  serial_open = true;
}

void WriteLine(const char* line) { printf("%s %s\n", serial_open ? "LINE" : "LOST", line); }

uint32_t MicrosNow() { return clock_us += 1500; }

uint8_t* AllocateArena(size_t bytes) {
  fake::Event("AllocateArena");
  return fake::Fails("arena") || bytes > sizeof(arena) ? nullptr : arena;
}

}  // namespace kvasir

bool InitCamera() {
  fake::Event("InitCamera");
  if (fake::Fails("camera")) {
    kvasir::WriteLine("error: fake camera not found");   // the board providers print why
    return false;
  }
  return true;
}

bool GetImage(int image_width, int image_height, int channels, int8_t* image_data) {
  char what[64];
  snprintf(what, sizeof(what), "GetImage %dx%dx%d", image_width, image_height, channels);
  fake::Event(what);
  if (fake::Fails("capture")) return false;
  memset(image_data, 0, static_cast<size_t>(image_width) * image_height * channels);
  for (int i = 0; i < kCategoryCount; ++i) output_scores[i] = static_cast<int8_t>(i == 1 ? 100 : -100 + i);
  return true;
}

int main(int argc, char** argv) {
  if (argc > 1) scenario = argv[1];
  fake::Event("setup");
  setup();
  for (int i = 0; i < 2; ++i) {
    fake::Event("loop");
    loop();
  }
  return 0;
}
