"""Parsers for the firmware serial lines and LiteRT benchmark_model output, on recorded samples."""
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from kvasir_tf import device_logs as D
from kvasir_tf.errors import KvasirError

DATA = Path(__file__).parent / "data"


def test_serial_sample_summary():
    s = D.parse_serial((DATA / "firmware_serial.log").read_text())
    assert s["header"] == {"model": "3f9a0c1e", "input": [96, 96], "arena_bytes": 153600}
    assert s["frames"] == 9
    assert s["malformed"] == 3            # truncated line, idx=six, conf=1.7
    assert s["other_lines"] == 3          # boot chatter and debug prints are not errors
    assert s["class_counts"] == {"normal-cecum": 2, "normal-pylorus": 1, "polyps": 5,
                                 "ulcerative-colitis": 1}
    lat = [412350, 411980, 412010, 412500, 413020, 411870, 412220, 412400, 425900]
    assert s["latency_median_us"] == 412350
    assert s["latency_p90_us"] == pytest.approx(np.percentile(lat, 90))
    assert s["latency_p90_us"] > 413020   # the one slow frame pulls p90 above the rest
    assert s["latency_median_ms"] == pytest.approx(412.35)


def test_serial_line_kinds_and_bytes_input():
    assert D.parse_serial_line("hello")[0] is None
    kind, frame = D.parse_serial_line("KVASIR conf=0.5 idx=1 latency_us=10 class=a")  # any key order
    assert kind == "frame" and frame == {"class": "a", "idx": 1, "conf": 0.5, "latency_us": 10}
    assert D.parse_serial_line("KVASIR class=a idx=1 conf=0.5")[0] == "malformed"  # missing latency
    assert D.parse_serial_line("KVASIR class=a idx=-1 conf=0.5 latency_us=3")[0] == "malformed"
    s = D.parse_serial([b"KVASIR class=b idx=0 conf=0.25 latency_us=7\r\n", b"\xff\xfe junk"])
    assert s["frames"] == 1 and s["class_counts"] == {"b": 1} and s["latency_median_us"] == 7


def test_serial_without_frames_has_no_latency():
    s = D.parse_serial(["boot", "KVASIR model=ab input=64x64 arena_bytes=1"])
    assert s["frames"] == 0 and "latency_median_us" not in s and s["header"]["input"] == [64, 64]


def test_benchmark_model_current_format():
    r = D.parse_benchmark_model((DATA / "benchmark_model_android.txt").read_text())
    assert r["init_us"] == 38214 and r["first_inference_us"] == 21034
    assert r["warmup_avg_us"] == 13566.4 and r["inference_avg_us"] == 13251.9
    assert r["inference_avg_ms"] == pytest.approx(13.2519)
    assert r["runs"] == 76 and r["median_us"] == 13164      # the measured run, not the warm-up
    assert r["p95_us"] == 13671 and r["inference_median_ms"] == pytest.approx(13.164)
    assert r["memory_init_mb"] == pytest.approx(6.63281) and r["memory_overall_mb"] == pytest.approx(11.5664)
    assert r["peak_memory_mb"] == pytest.approx(14.2031)
    assert r["num_threads"] == 1 and r["graph"].endswith("model_int8.tflite")
    assert r["model_size_mb"] == pytest.approx(3.57724)


def test_benchmark_model_old_logcat_format_with_crlf():
    text = (DATA / "benchmark_model_logcat_old.txt").read_text().replace("\n", "\r\n")
    r = D.parse_benchmark_model(text)
    assert r["inference_avg_us"] == pytest.approx(28004.2)   # 2.80042e+04 notation
    assert r["memory_overall_mb"] == pytest.approx(38.809)
    assert r["runs"] == 50 and r["std_us"] == 402 and "median_us" not in r
    assert r["num_threads"] == 4 and "peak_memory_mb" not in r


def test_benchmark_model_failed_run_is_one_line_error():
    with pytest.raises(KvasirError, match="Inference timings"):
        D.parse_benchmark_model((DATA / "benchmark_model_failed.txt").read_text())


def test_read_serial_without_pyserial(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(KvasirError, match="pip install pyserial"):
        D.read_serial("/dev/ttyACM0", seconds=0.1)


def test_read_serial_with_fake_port(monkeypatch):
    lines = [b"boot\r\n", b"KVASIR class=polyps idx=6 conf=0.9 latency_us=5\r\n"]

    class FakePort:
        def __init__(self, port, baudrate, timeout):
            assert (port, baudrate) == ("/dev/ttyFAKE", 9600)
            self.lines = list(lines)

        def readline(self):
            return self.lines.pop(0) if self.lines else b""

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    fake = types.SimpleNamespace(Serial=FakePort, SerialException=OSError)
    monkeypatch.setitem(sys.modules, "serial", fake)
    got = D.read_serial("/dev/ttyFAKE", 9600, seconds=0.2)
    assert got == ["boot", "KVASIR class=polyps idx=6 conf=0.9 latency_us=5"]
    assert D.parse_serial(got)["class_counts"] == {"polyps": 1}
