// The camera (or the host, in the serial test mode) -> the model's int8 input, as in TFLM's
// person_detection example. One implementation per board; both call PreprocessFrame
// (image_preprocess.h) on the camera frame.
#ifndef KVASIR_IMAGE_PROVIDER_H_
#define KVASIR_IMAGE_PROVIDER_H_

#include <stdint.h>

// Starts the camera; false (after printing why) when it does not respond.
bool InitCamera();

// Fills image_data (image_width x image_height x channels int8, the model's input tensor) with
// the next frame; false when no frame is ready.
bool GetImage(int image_width, int image_height, int channels, int8_t* image_data);

#endif  // KVASIR_IMAGE_PROVIDER_H_
