// How sure the model is: the int8 output dequantized, floored at half an output step and
// divided by the temperature fitted on validation (kTemperature), then the decision: the top
// class, or kUncertain when its probability is below kAbstainBelow. kvasir_tf.confidence is the
// reference; tests/test_micro_cpp.py pins this port to it with golden vectors.
#ifndef KVASIR_CONFIDENCE_H_
#define KVASIR_CONFIDENCE_H_

#include <stdint.h>

namespace kvasir {

constexpr int kUncertain = -1;
// The class= field of a frame the firmware abstains on (kvasir_tf.device_logs.UNCERTAIN_LABEL).
constexpr char kUncertainLabel[] = "uncertain";

// probs[i] = softmax(log(max(p_i, scale / 2)) / temperature) with p_i = scale * (q_i - zero_point).
void ScaledProbabilities(const int8_t* scores, int n, float scale, int zero_point,
                         float temperature, float* probs);

// The top class (lowest index on ties), or kUncertain when probs[top] < abstain_below
// (abstain_below <= 0: never abstain).
int Decide(const float* probs, int n, float abstain_below);

}  // namespace kvasir

#endif  // KVASIR_CONFIDENCE_H_
