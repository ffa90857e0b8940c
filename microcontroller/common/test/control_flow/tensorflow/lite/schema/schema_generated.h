// Control-flow test only: the fake TFLM (see fake_tflm.h).
#include "fake_tflm.h"
