"""Flash and RAM budgets per board, checked before anything is written.

Firmware figures that cannot be measured here (no vendor toolchain: the Arduino mbed core, ESP-IDF
and the TFLM library are built on the user's machine) are stated estimates, named ``*_estimate``
in the report; replace them with the numbers ``arduino-cli compile`` / ``idf.py size`` print.
"""
from __future__ import annotations

from kvasir_tf import device_preprocessing as dp
from kvasir_tf.errors import KvasirError

KIB = 1024
BOARDS = {
    "nano33ble": {
        "name": "Arduino Nano 33 BLE Sense (nRF52840)",
        # 1 MiB flash minus the 64 KiB bootloader: arduino-cli's "Maximum is 983040 bytes".
        "flash_bytes": 983040,
        "ram_bytes": 256 * KIB,
        # Arduino mbed core + TFLM (6 kernels, CMSIS-NN) + Arduino_OV767X, without the model.
        "firmware_flash_estimate": 300 * KIB,
        # mbed OS globals, heap reserve and the USB serial stack besides our buffers.
        "system_ram_estimate": 48 * KIB,
        "stack_bytes": 8 * KIB,
        # OV7675 (Arduino_OV767X): QCIF RGB565, one frame buffer in RAM.
        "frame": {"format": "rgb565", "width": 176, "height": 144},
        "arena_memory": "internal SRAM (the only RAM)",
        "frame_memory": "internal SRAM",
    },
    "esp32s3": {
        "name": "ESP32-S3 (ESP32-S3-EYE, 8 MiB PSRAM, OV2640)",
        # sdkconfig.defaults: 8 MiB flash with partitions.csv giving the app a 3 MiB factory slot.
        "flash_bytes": 3 * 1024 * KIB,
        "firmware_flash_estimate": 700 * KIB,   # ESP-IDF + esp32-camera + esp-tflite-micro (ESP-NN)
        # Internal SRAM left for heap after ESP-IDF, Wi-Fi off: the arena goes here (fast).
        "internal_ram_bytes": 320 * KIB,
        "system_ram_estimate": 64 * KIB,
        "stack_bytes": 16 * KIB,
        "psram_bytes": 8 * 1024 * KIB,
        # OV2640: QVGA RGB565, two frame buffers in PSRAM (esp32-camera fb_location = PSRAM).
        "frame": {"format": "rgb565", "width": 320, "height": 240, "buffers": 2},
        "arena_memory": "internal SRAM (heap_caps_malloc MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT)",
        "frame_memory": "PSRAM (esp32-camera CAMERA_FB_IN_PSRAM)",
    },
}


def board_spec(board: str) -> dict:
    if board not in BOARDS:
        raise KvasirError(f"unknown board {board!r}: use one of {', '.join(BOARDS)}")
    return BOARDS[board]


def frame_spec(board: str, image_size: int, frame: dict | None = None) -> dict:
    """The board's camera frame, checked to be one the preprocessing supports for this model."""
    f = dict(frame or board_spec(board)["frame"])
    fmt, w, h = f["format"], int(f["width"]), int(f["height"])
    if fmt not in dp.FORMATS:
        raise KvasirError(f"camera format {fmt!r} is not one the preprocessing supports ({', '.join(dp.FORMATS)})")
    if fmt == "yuyv" and w % 2:
        raise KvasirError(f"a {w}x{h} YUYV frame has an odd width; YUYV pairs pixels: pick an even width")
    if min(w, h) < image_size:
        raise KvasirError(f"camera frame {w}x{h} is smaller than the {image_size}x{image_size} model input: "
                          "the preprocessing crops and box-averages down, it does not upscale; "
                          f"pick a frame of at least {image_size}x{image_size}")
    f.update(width=w, height=h, bytes=w * h * (3 if fmt == "rgb888" else 2))
    return f


def check_budget(board: str, *, model_bytes: int, arena_bytes: int, frame: dict,
                 code_bytes: int = 0) -> dict:
    """The budget report; KvasirError naming the budget that is exceeded."""
    b = board_spec(board)
    frames = frame["bytes"] * int(frame.get("buffers", 1))
    flash = model_bytes + b["firmware_flash_estimate"] + code_bytes
    rows = [("flash", flash, b["flash_bytes"],
             f"model {model_bytes} + firmware_estimate {b['firmware_flash_estimate']} + common/ {code_bytes}")]
    if board == "nano33ble":
        ram = arena_bytes + frames + b["stack_bytes"] + b["system_ram_estimate"]
        rows.append(("ram", ram, b["ram_bytes"], f"arena {arena_bytes} + frame {frames} + stack "
                     f"{b['stack_bytes']} + system_estimate {b['system_ram_estimate']}"))
    else:
        ram = arena_bytes + b["stack_bytes"] + b["system_ram_estimate"]
        rows.append(("internal_ram", ram, b["internal_ram_bytes"], f"arena {arena_bytes} + stack "
                     f"{b['stack_bytes']} + system_estimate {b['system_ram_estimate']}"))
        rows.append(("psram", frames, b["psram_bytes"], f"{frame.get('buffers', 1)} frame buffers of {frame['bytes']}"))
    report = {"board": board, "name": b["name"], "arena_memory": b["arena_memory"],
              "frame_memory": b["frame_memory"], "frame": frame,
              "budgets": [{"budget": n, "used": u, "limit": lim, "free": lim - u, "parts": parts, "ok": u <= lim}
                          for n, u, lim, parts in rows]}
    over = [r for r in report["budgets"] if not r["ok"]]
    if over:
        r = over[0]
        raise KvasirError(f"{b['name']}: the {r['budget']} budget is exceeded: {r['used']} > {r['limit']} bytes "
                          f"({r['parts']}); use a smaller model (--last-conv-channels, --early-expansion, "
                          "--alpha) or a smaller camera frame")
    return report


def budget_markdown(report: dict) -> str:
    lines = [f"# Budget: {report['name']}", "",
             f"Arena: {report['arena_memory']}. Camera frame ({report['frame']['format']} "
             f"{report['frame']['width']}x{report['frame']['height']}): {report['frame_memory']}.", "",
             "| budget | used (B) | limit (B) | free (B) | parts |", "|---|---:|---:|---:|---|"]
    for r in report["budgets"]:
        lines.append(f"| {r['budget']} | {r['used']} | {r['limit']} | {r['free']} | {r['parts']} |")
    return "\n".join(lines) + "\n"
