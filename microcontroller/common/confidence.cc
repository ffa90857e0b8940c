#include "confidence.h"

#include <math.h>

namespace kvasir {

void ScaledProbabilities(const int8_t* scores, int n, float scale, int zero_point,
                         float temperature, float* probs) {
  const float floor = scale * 0.5f;
  float top = -INFINITY;
  for (int i = 0; i < n; ++i) {
    float p = scale * static_cast<float>(scores[i] - zero_point);
    probs[i] = logf(p > floor ? p : floor) / temperature;
    if (probs[i] > top) top = probs[i];
  }
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    probs[i] = expf(probs[i] - top);
    sum += probs[i];
  }
  for (int i = 0; i < n; ++i) probs[i] /= sum;
}

int Decide(const float* probs, int n, float abstain_below) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (probs[i] > probs[best]) best = i;
  }
  return (abstain_below > 0.0f && probs[best] < abstain_below) ? kUncertain : best;
}

}  // namespace kvasir
