// A fake of the few TFLM calls main_functions.cc makes, for the host control-flow test
// (control_flow_test.cc). No kernels, no model parsing, no arena planning: it proves the order of
// setup() and that every failure is reported, nothing about TFLM. Each call logs an event; the
// scenario the test runs makes one call fail.
#ifndef KVASIR_FAKE_TFLM_H_
#define KVASIR_FAKE_TFLM_H_

#include <stddef.h>
#include <stdint.h>

namespace fake {
void Event(const char* what);      // prints "EVENT <what>"
bool Fails(const char* what);      // true when the scenario makes `what` fail
int8_t* TensorBuffer(size_t bytes);
}  // namespace fake

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
typedef union { int8_t* int8; float* f; } TfLitePtrUnion;
typedef struct {
  TfLiteType type;
  TfLitePtrUnion data;
  size_t bytes;
} TfLiteTensor;

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

inline void InitializeTarget() { fake::Event("InitializeTarget"); }

struct Model {
  uint32_t version() const { return fake::Fails("schema") ? TFLITE_SCHEMA_VERSION - 1 : TFLITE_SCHEMA_VERSION; }
};

inline const Model* GetModel(const void* buffer) {
  static Model model;
  fake::Event(buffer != nullptr ? "GetModel" : "GetModel(nullptr)");
  return &model;
}

class MicroOpResolver {};

// Every registration method the generated resolver may call (kvasir_tf.micro.tflm.OP_RESOLVER_METHODS).
template <unsigned int kOps>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
#define KVASIR_FAKE_ADD(name) \
  TfLiteStatus name() { return Add(#name); }
  KVASIR_FAKE_ADD(AddAdd) KVASIR_FAKE_ADD(AddAveragePool2D) KVASIR_FAKE_ADD(AddConcatenation)
  KVASIR_FAKE_ADD(AddConv2D) KVASIR_FAKE_ADD(AddDepthwiseConv2D) KVASIR_FAKE_ADD(AddDequantize)
  KVASIR_FAKE_ADD(AddFullyConnected) KVASIR_FAKE_ADD(AddHardSwish) KVASIR_FAKE_ADD(AddLogistic)
  KVASIR_FAKE_ADD(AddMaxPool2D) KVASIR_FAKE_ADD(AddMean) KVASIR_FAKE_ADD(AddMul) KVASIR_FAKE_ADD(AddPad)
  KVASIR_FAKE_ADD(AddPadV2) KVASIR_FAKE_ADD(AddQuantize) KVASIR_FAKE_ADD(AddRelu) KVASIR_FAKE_ADD(AddRelu6)
  KVASIR_FAKE_ADD(AddReshape) KVASIR_FAKE_ADD(AddSoftmax) KVASIR_FAKE_ADD(AddSqueeze) KVASIR_FAKE_ADD(AddSub)
#undef KVASIR_FAKE_ADD

 private:
  TfLiteStatus Add(const char* name) {
    fake::Event(name);
    // Like the real resolver, one more op than its capacity fails; the scenario fails the last one.
    if (++registered_ > kOps || (registered_ == kOps && fake::Fails("register"))) return kTfLiteError;
    return kTfLiteOk;
  }
  unsigned int registered_ = 0;
};

// The interpreter's input and output tensors, sized by the scenario (see control_flow_test.cc).
struct FakeTensors {
  TfLiteTensor input;
  TfLiteTensor output;
};
FakeTensors& Tensors();

class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& resolver, uint8_t* arena, size_t arena_bytes) {
    (void)resolver;
    fake::Event(model != nullptr && arena != nullptr && arena_bytes > 0 ? "MicroInterpreter" : "MicroInterpreter(bad)");
  }
  TfLiteStatus AllocateTensors() {
    fake::Event("AllocateTensors");
    return fake::Fails("allocate") ? kTfLiteError : kTfLiteOk;
  }
  TfLiteTensor* input(size_t i) { return i == 0 ? &Tensors().input : nullptr; }
  TfLiteTensor* output(size_t i) { return i == 0 ? &Tensors().output : nullptr; }
  TfLiteStatus Invoke() {
    fake::Event("Invoke");
    return fake::Fails("invoke") ? kTfLiteError : kTfLiteOk;
  }
  size_t arena_used_bytes() const { return 1234; }
};

}  // namespace tflite

#endif  // KVASIR_FAKE_TFLM_H_
