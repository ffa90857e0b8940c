// Arduino Nano 33 BLE Sense + OV7675 (Tiny Machine Learning Kit): the kvasir int8 classifier.
// setup() and loop() are common/main_functions.cc, copied into src/ by ./sync_sources.sh with the
// generated model files; see README.md. Libraries: Arduino_TensorFlowLite, Arduino_OV767X.
#include <TensorFlowLite.h>

#include "src/main_functions.h"
