// ESP-IDF entry: setup() once, loop() forever (common/main_functions.cc).
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "main_functions.h"

extern "C" void app_main(void) {
  setup();
  while (true) {
    loop();
    vTaskDelay(1);  // let the idle task feed the watchdog
  }
}
