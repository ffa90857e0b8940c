// Results on the serial port in the format kvasir_tf/device_logs.py parses (serial_report.h).
#ifndef KVASIR_DETECTION_RESPONDER_H_
#define KVASIR_DETECTION_RESPONDER_H_

#include <stddef.h>
#include <stdint.h>

// The boot header: KVASIR model=<sha> input=<S>x<S> arena_bytes=<n>.
void RespondHeader(size_t arena_used_bytes);

// One classified frame: KVASIR class=<name> idx=<i> conf=<p> latency_us=<t> frame=<n>, with p the
// temperature-scaled probability of the top class i; class=uncertain when p < kAbstainBelow.
void RespondToDetection(const int8_t* scores, uint32_t latency_us, long frame);

#endif  // KVASIR_DETECTION_RESPONDER_H_
