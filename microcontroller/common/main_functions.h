// setup() once, loop() forever: Arduino calls them itself; ESP-IDF's app_main calls them.
#ifndef KVASIR_MAIN_FUNCTIONS_H_
#define KVASIR_MAIN_FUNCTIONS_H_

#ifdef __cplusplus
extern "C" {
#endif

void setup();
void loop();

#ifdef __cplusplus
}
#endif

#endif  // KVASIR_MAIN_FUNCTIONS_H_
