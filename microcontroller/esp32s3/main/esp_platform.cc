// platform.h for ESP-IDF: stdout (USB Serial/JTAG console), esp_timer, the arena in internal SRAM.
#include <stdio.h>

#include "esp_heap_caps.h"
#include "esp_timer.h"
#include "platform.h"

namespace kvasir {

// The console (USB Serial/JTAG or UART, sdkconfig) is up before app_main: nothing to open.
void BeginSerial() {}

void WriteLine(const char* line) {
  printf("%s\n", line);
  fflush(stdout);
}

uint32_t MicrosNow() { return static_cast<uint32_t>(esp_timer_get_time()); }

uint8_t* AllocateArena(size_t bytes) {
  // Internal SRAM: ESP-NN kernels run several times faster on it than on PSRAM.
  void* p = heap_caps_aligned_alloc(16, bytes, MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT);
  if (p == nullptr) {
    WriteLine("warning: the tensor arena does not fit internal SRAM; using PSRAM (slower)");
    p = heap_caps_aligned_alloc(16, bytes, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
  }
  return static_cast<uint8_t*>(p);
}

}  // namespace kvasir
