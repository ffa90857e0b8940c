"""On-device accuracy through the Nano 33 BLE sketch's serial test mode: send each test image as
``KIMG`` + S*S*3 RGB bytes, collect the ``KVASIR class=...`` line it answers with (parsed by
:mod:`kvasir_tf.device_logs`), and compare with the labels.

    python -m kvasir_tf.micro.serial_test --port /dev/ttyACM0 --run RUN_DIR [--limit 100]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from kvasir_tf import device_logs
from kvasir_tf.errors import KvasirError, cli

MAGIC = b"KIMG"
REPLY_TIMEOUT_S = 20.0


def classify(conn, image: np.ndarray, timeout: float = REPLY_TIMEOUT_S) -> tuple[dict, list]:
    """Send one uint8 [S, S, 3] image; (the parsed result, every line read meanwhile)."""
    conn.write(MAGIC + np.ascontiguousarray(image, np.uint8).tobytes())
    lines, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        raw = conn.readline()
        if not raw:
            continue
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        lines.append(line)
        kind, value = device_logs.parse_serial_line(line)
        if kind == "frame":
            return value, lines
    raise KvasirError(f"no KVASIR result line within {timeout:.0f} s: is the kvasir sketch running "
                      "(python -m kvasir_tf.micro ... --board nano33ble, then upload) and the port right?")


def run_serial_test(conn, images: np.ndarray, labels=None) -> dict:
    """Classify every image on the board; latency summary, predictions and accuracy."""
    lines, preds = [], []
    for image in images:
        result, got = classify(conn, image)
        lines += got
        preds.append(result["idx"])
    summary = device_logs.parse_serial(lines)
    summary["predictions"] = preds
    if labels is not None:
        summary["accuracy"] = float(np.mean(np.asarray(preds) == np.asarray(labels)))
    return summary


@cli
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m kvasir_tf.micro.serial_test", description=__doc__.splitlines()[0])
    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyACM0")
    p.add_argument("--run", required=True, help="run directory whose test split is sent")
    p.add_argument("--limit", type=int, default=100, help="at most this many test images")
    p.add_argument("--baud", type=int, default=device_logs.DEFAULT_BAUD)
    args = p.parse_args(argv)
    try:
        import serial  # pyserial
    except ImportError:
        raise KvasirError("the serial test needs pyserial: pip install pyserial") from None
    from kvasir_tf.micro.export import run_test_images
    images, labels = run_test_images(args.run, args.limit)
    with serial.Serial(args.port, baudrate=args.baud, timeout=0.5) as conn:
        time.sleep(2.0)                        # the board resets when the port opens
        s = run_serial_test(conn, images, labels)
    print(f"{len(images)} images on the board: accuracy {s['accuracy']:.3f}, latency median "
          f"{s.get('latency_median_ms', float('nan')):.1f} ms (p90 {s.get('latency_p90_ms', float('nan')):.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
