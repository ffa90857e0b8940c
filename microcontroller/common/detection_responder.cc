#include "detection_responder.h"

#include "model_settings.h"
#include "platform.h"
#include "serial_report.h"
#include "top_k.h"

void RespondHeader(size_t arena_used_bytes) {
  char line[kvasir::kReportLineBytes];
  if (kvasir::FormatHeader(line, sizeof(line), kModelSha, kNumCols, static_cast<long>(arena_used_bytes)) > 0) {
    kvasir::WriteLine(line);
  }
}

void RespondToDetection(const int8_t* scores, uint32_t latency_us, long frame) {
  int best = 0;
  if (kvasir::TopK(scores, kCategoryCount, 1, &best) != 1) return;
  const float confidence = kvasir::Dequantize(scores[best], kOutputScale, kOutputZeroPoint);
  char line[kvasir::kReportLineBytes];
  if (kvasir::FormatResult(line, sizeof(line), kCategoryLabels[best], best, confidence, latency_us, frame) > 0) {
    kvasir::WriteLine(line);
  }
}
