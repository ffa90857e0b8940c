// Top-k of an int8 output tensor: highest score first, the lower index first on ties (the rule of
// kvasir_tf.golden.top1, so the firmware and the Python reference name the same class).
#ifndef KVASIR_TOP_K_H_
#define KVASIR_TOP_K_H_

#include <stdint.h>

namespace kvasir {

// Writes min(k, n) class indices into `indices`; returns how many.
int TopK(const int8_t* scores, int n, int k, int* indices);

// The output tensor's real value scale * (q - zero_point), e.g. a softmax probability.
float Dequantize(int8_t q, float scale, int zero_point);

}  // namespace kvasir

#endif  // KVASIR_TOP_K_H_
