// image_provider.h for the OV7675 (Arduino_OV767X), plus the serial test mode: when the host sends
// "KIMG" followed by kNumRows x kNumCols x 3 RGB bytes (python -m kvasir_tf.micro.serial_test),
// that image is classified instead of the camera frame, so accuracy can be measured on the board.
#include <Arduino.h>
#include <Arduino_OV767X.h>

#include "src/image_preprocess.h"
#include "src/image_provider.h"
#include "src/model_settings.h"
#include "src/platform.h"

namespace {

constexpr char kTestMagic[] = "KIMG";
constexpr uint32_t kTestTimeoutMs = 5000;
alignas(4) uint8_t frame[kFrameBytes];   // one QCIF RGB565 frame (counted in the RAM budget)

// True when the host sent a test image into `pixels` (RGB888, kMaxImageSize bytes).
bool ReadTestImage(uint8_t* pixels) {
  if (Serial.available() < 4 || Serial.peek() != kTestMagic[0]) return false;
  char magic[4];
  Serial.readBytes(magic, 4);
  if (memcmp(magic, kTestMagic, 4) != 0) return false;
  Serial.setTimeout(kTestTimeoutMs);
  return Serial.readBytes(reinterpret_cast<char*>(pixels), kMaxImageSize) == static_cast<size_t>(kMaxImageSize);
}

}  // namespace

bool InitCamera() {
  if (kFrameWidth != 176 || kFrameHeight != 144) {
    kvasir::WriteLine("error: model_settings.h frame is not QCIF 176x144; export with --board nano33ble");
    return false;
  }
  if (!Camera.begin(QCIF, RGB565, 1)) {
    kvasir::WriteLine("error: OV7675 not found: check the camera on the Tiny Machine Learning Kit shield");
    return false;
  }
  return true;
}

bool GetImage(int image_width, int image_height, int channels, int8_t* image_data) {
  if (image_width != kNumCols || image_height != kNumRows || channels != kNumChannels) {
    kvasir::WriteLine("error: GetImage called for another shape than the model's input "
                      "(kNumCols x kNumRows x kNumChannels in model_settings.h)");
    return false;
  }
  uint8_t* pixels = reinterpret_cast<uint8_t*>(image_data);
  if (ReadTestImage(pixels)) {
    kvasir::QuantizePixels(pixels, static_cast<size_t>(image_width) * image_height * channels, kInputScale,
                           kInputZeroPoint, image_data);
    return true;
  }
  Camera.readFrame(frame);
  // Arduino_OV767X delivers RGB565 high byte first.
  return kvasir::PreprocessFrame(frame, kvasir::PixelFormat::kRgb565Be, kFrameHeight, kFrameWidth, image_width,
                                 kInputScale, kInputZeroPoint, image_data) == kvasir::PreprocessStatus::kOk;
}
