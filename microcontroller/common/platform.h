// What the shared firmware code needs from a board: one implementation per board
// (esp32s3/main/esp_platform.cc, nano33ble/arduino_platform.cpp).
#ifndef KVASIR_PLATFORM_H_
#define KVASIR_PLATFORM_H_

#include <stddef.h>
#include <stdint.h>

namespace kvasir {

void BeginSerial();                         // opens the serial port: setup() calls it before any line
void WriteLine(const char* line);           // one line on the serial port, newline added
uint32_t MicrosNow();                       // a microsecond clock for the latency figure
uint8_t* AllocateArena(size_t bytes);       // the tensor arena, 16-byte aligned, or nullptr

}  // namespace kvasir

#endif  // KVASIR_PLATFORM_H_
