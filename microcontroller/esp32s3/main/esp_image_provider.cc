// image_provider.h for the ESP32-S3-EYE's OV2640 via esp32-camera: RGB565 frames of
// kFrameWidth x kFrameHeight in PSRAM, preprocessed straight into the model's input tensor.
#include "esp_camera.h"
#include "image_preprocess.h"
#include "image_provider.h"
#include "model_settings.h"
#include "platform.h"
#include "sdkconfig.h"

namespace {

framesize_t FrameSizeFor(int width, int height) {
  if (width == 320 && height == 240) return FRAMESIZE_QVGA;
  if (width == 240 && height == 240) return FRAMESIZE_240X240;
  if (width == 176 && height == 144) return FRAMESIZE_QCIF;
  if (width == 160 && height == 120) return FRAMESIZE_QQVGA;
  return FRAMESIZE_INVALID;
}

}  // namespace

bool InitCamera() {
  camera_config_t config = {};
  config.pin_pwdn = CONFIG_KVASIR_CAM_PIN_PWDN;
  config.pin_reset = CONFIG_KVASIR_CAM_PIN_RESET;
  config.pin_xclk = CONFIG_KVASIR_CAM_PIN_XCLK;
  config.pin_sccb_sda = CONFIG_KVASIR_CAM_PIN_SIOD;
  config.pin_sccb_scl = CONFIG_KVASIR_CAM_PIN_SIOC;
  config.pin_d7 = CONFIG_KVASIR_CAM_PIN_D7;
  config.pin_d6 = CONFIG_KVASIR_CAM_PIN_D6;
  config.pin_d5 = CONFIG_KVASIR_CAM_PIN_D5;
  config.pin_d4 = CONFIG_KVASIR_CAM_PIN_D4;
  config.pin_d3 = CONFIG_KVASIR_CAM_PIN_D3;
  config.pin_d2 = CONFIG_KVASIR_CAM_PIN_D2;
  config.pin_d1 = CONFIG_KVASIR_CAM_PIN_D1;
  config.pin_d0 = CONFIG_KVASIR_CAM_PIN_D0;
  config.pin_vsync = CONFIG_KVASIR_CAM_PIN_VSYNC;
  config.pin_href = CONFIG_KVASIR_CAM_PIN_HREF;
  config.pin_pclk = CONFIG_KVASIR_CAM_PIN_PCLK;
  config.xclk_freq_hz = 20000000;
  config.ledc_timer = LEDC_TIMER_0;
  config.ledc_channel = LEDC_CHANNEL_0;
  config.pixel_format = PIXFORMAT_RGB565;
  config.frame_size = FrameSizeFor(kFrameWidth, kFrameHeight);
  config.fb_count = 2;
  config.fb_location = CAMERA_FB_IN_PSRAM;
  config.grab_mode = CAMERA_GRAB_LATEST;
  if (config.frame_size == FRAMESIZE_INVALID) {
    kvasir::WriteLine("error: kFrameWidth x kFrameHeight is not an OV2640 frame size; regenerate model_settings.h");
    return false;
  }
  if (esp_camera_init(&config) != ESP_OK) {
    kvasir::WriteLine("error: esp_camera_init failed: check the camera ribbon and the pins in menuconfig");
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
  camera_fb_t* fb = esp_camera_fb_get();
  if (fb == nullptr) return false;
  // esp32-camera stores RGB565 high byte first.
  const kvasir::PreprocessStatus status = kvasir::PreprocessFrame(
      fb->buf, kvasir::PixelFormat::kRgb565Be, static_cast<int>(fb->height), static_cast<int>(fb->width),
      image_width, kInputScale, kInputZeroPoint, image_data);
  esp_camera_fb_return(fb);
  return status == kvasir::PreprocessStatus::kOk;
}
