// Host test of confidence.cc against kvasir_tf.golden's confidence.tsv (run by tests/test_micro_cpp.py):
//   confidence_test CONFIDENCE_TSV
// Prints one line per case, "ok NAME DECISION MAX_ABS_DIFF" or "FAIL NAME ...", and exits 1 when
// a decision differs or a probability differs from the reference by more than kTolerance.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "confidence.h"

namespace {

constexpr float kTolerance = 1e-5f;   // float32 logf/expf against the float64 reference

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

bool RunCase(const std::string& line) {
  const std::vector<std::string> f = Split(line, '\t');
  if (f.size() != 8) {
    printf("FAIL bad confidence.tsv line: %s\n", line.c_str());
    return false;
  }
  const std::string& name = f[0];
  const float scale = strtof(f[1].c_str(), nullptr);
  const int zero_point = atoi(f[2].c_str());
  const float temperature = strtof(f[3].c_str(), nullptr);
  const float abstain_below = f[4] == "none" ? 0.0f : strtof(f[4].c_str(), nullptr);
  std::vector<int8_t> scores;
  for (const std::string& v : Split(f[5], ',')) scores.push_back(static_cast<int8_t>(atoi(v.c_str())));
  std::vector<float> want;
  for (const std::string& v : Split(f[6], ',')) want.push_back(strtof(v.c_str(), nullptr));
  const int want_decision = atoi(f[7].c_str());
  const int n = static_cast<int>(scores.size());
  std::vector<float> probs(n);
  kvasir::ScaledProbabilities(scores.data(), n, scale, zero_point, temperature, probs.data());
  const int decision = kvasir::Decide(probs.data(), n, abstain_below);
  float worst = 0.0f;
  for (int i = 0; i < n; ++i) worst = fmaxf(worst, fabsf(probs[i] - want[i]));
  if (decision != want_decision || worst > kTolerance || static_cast<int>(want.size()) != n) {
    printf("FAIL %s decision %d (want %d) max |diff| %.3g\n", name.c_str(), decision, want_decision, worst);
    return false;
  }
  printf("ok %s %d %.3g\n", name.c_str(), decision, worst);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: confidence_test CONFIDENCE_TSV\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  std::string line;
  if (!in || !std::getline(in, line)) {
    fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
  bool ok = true;
  while (std::getline(in, line)) {
    if (!line.empty()) ok = RunCase(line) && ok;
  }
  return ok ? 0 : 1;
}
