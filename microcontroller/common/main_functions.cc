// The TFLM-facing part, shaped like TFLM's examples/person_detection/main_functions.cc.
// Built by the board builds (ESP-IDF with esp-tflite-micro, Arduino with the Arduino TensorFlow
// Lite library); tests/test_firmware_control_flow.py builds it with host g++ against a fake of the
// few TFLM calls below to check its control flow (order of setup, every error reported), not TFLM.
#include "main_functions.h"

#include "detection_responder.h"
#include "image_provider.h"
#include "micro_op_resolver.h"
#include "model_data.h"
#include "model_settings.h"
#include "platform.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
tflite::MicroInterpreter* interpreter = nullptr;
TfLiteTensor* input = nullptr;
long frame_count = 0;
bool ready = false;
}  // namespace

void setup() {
  // The serial port first, as person_detection does (its Arduino InitializeTarget opens it), so
  // that every error below reaches the host.
  tflite::InitializeTarget();
  kvasir::BeginSerial();
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    kvasir::WriteLine("error: the model's schema version is not this TFLM's; regenerate model_data.cc");
    return;
  }
  static ModelOpResolver resolver;
  if (!RegisterModelOps(resolver)) {
    kvasir::WriteLine("error: an op of the model could not be registered");
    return;
  }
  uint8_t* arena = kvasir::AllocateArena(kTensorArenaSize);
  if (arena == nullptr) {
    kvasir::WriteLine("error: no memory for the tensor arena (kTensorArenaSize in model_settings.h)");
    return;
  }
  static tflite::MicroInterpreter static_interpreter(model, resolver, arena, kTensorArenaSize);
  interpreter = &static_interpreter;
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    kvasir::WriteLine("error: AllocateTensors failed: the arena is too small for this build's kernels; "
                      "raise kTensorArenaSize");
    return;
  }
  input = interpreter->input(0);
  if (input->type != kTfLiteInt8 || input->bytes != static_cast<size_t>(kMaxImageSize)) {
    kvasir::WriteLine("error: the model's input is not the int8 image model_settings.h describes");
    return;
  }
  if (!InitCamera()) return;
  RespondHeader(interpreter->arena_used_bytes());
  ready = true;
}

void loop() {
  if (!ready) return;  // setup() printed why
  if (!GetImage(kNumCols, kNumRows, kNumChannels, input->data.int8)) {
    kvasir::WriteLine("error: image capture failed");
    return;
  }
  const uint32_t start = kvasir::MicrosNow();
  if (interpreter->Invoke() != kTfLiteOk) {
    kvasir::WriteLine("error: Invoke failed");
    return;
  }
  RespondToDetection(interpreter->output(0)->data.int8, kvasir::MicrosNow() - start, frame_count++);
}
