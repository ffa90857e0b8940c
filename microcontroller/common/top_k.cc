#include "top_k.h"

namespace kvasir {

int TopK(const int8_t* scores, int n, int k, int* indices) {
  if (scores == nullptr || indices == nullptr || n <= 0 || k <= 0) return 0;
  const int m = k < n ? k : n;
  int count = 0;
  // Insertion into a sorted list of m: n and k are class counts (< 100), no heap needed.
  for (int i = 0; i < n; ++i) {
    int pos = count;
    while (pos > 0 && scores[indices[pos - 1]] < scores[i]) --pos;  // strict: earlier index wins ties
    if (pos >= m) continue;
    for (int j = (count < m ? count : m - 1); j > pos; --j) indices[j] = indices[j - 1];
    indices[pos] = i;
    if (count < m) ++count;
  }
  return count;
}

float Dequantize(int8_t q, float scale, int zero_point) {
  return scale * static_cast<float>(static_cast<int32_t>(q) - zero_point);
}

}  // namespace kvasir
