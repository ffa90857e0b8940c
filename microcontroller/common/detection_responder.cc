#include "detection_responder.h"

#include "model_settings.h"
#include "platform.h"
#include "confidence.h"
#include "serial_report.h"

void RespondHeader(size_t arena_used_bytes) {
  char line[kvasir::kReportLineBytes];
  if (kvasir::FormatHeader(line, sizeof(line), kModelSha, kNumCols, static_cast<long>(arena_used_bytes)) > 0) {
    kvasir::WriteLine(line);
  }
}

void RespondToDetection(const int8_t* scores, uint32_t latency_us, long frame) {
  float probs[kCategoryCount];
  kvasir::ScaledProbabilities(scores, kCategoryCount, kOutputScale, kOutputZeroPoint, kTemperature, probs);
  const int decision = kvasir::Decide(probs, kCategoryCount, kAbstainBelow);
  // idx stays the top class when uncertain, so a serial test still scores the model itself.
  const int best = decision == kvasir::kUncertain ? kvasir::Decide(probs, kCategoryCount, 0.0f) : decision;
  const char* label = decision == kvasir::kUncertain ? kvasir::kUncertainLabel : kCategoryLabels[best];
  char line[kvasir::kReportLineBytes];
  if (kvasir::FormatResult(line, sizeof(line), label, best, probs[best], latency_us, frame) > 0) {
    kvasir::WriteLine(line);
  }
}
