"""Parse on-device figures: the firmware's serial lines and LiteRT's ``benchmark_model`` output.

Firmware serial format (the microcontroller firmware prints exactly this, one line each):

    KVASIR model=<sha256 prefix> input=<S>x<S> arena_bytes=<n>
    KVASIR class=<name> idx=<i> conf=<0..1 float> latency_us=<int> [frame=<n>]

The header is printed once at boot (``model`` is a prefix of the .tflite's sha256 from its
JSON sidecar, so a log can be matched to the artifact); then one line per classified frame.
Keys are ``key=value`` separated by single spaces, in any order; class names contain no spaces.
Anything else on the port (boot messages, debug prints) is ignored; a ``KVASIR`` line that does
not parse is skipped and counted in ``malformed``.

``benchmark_model`` (LiteRT's tool, usually run over ``adb shell``) prints, among others:

    INFO: count=50 first=... curr=... min=... max=... avg=... std=... [p5=... median=... p95=...]
    INFO: Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51e+06, Inference (avg): 2.95e+06
    INFO: Memory footprint delta from the start of the tool (MB): init=4.21 overall=46.08
    INFO: Overall peak memory footprint (MB) via periodic monitoring: 52.1

(older builds print ``Peak memory footprint (MB): init=... overall=...``; logcat adds
``I tflite  :`` prefixes; adb adds ``\\r``). :func:`parse_benchmark_model` accepts all of them.
"""
from __future__ import annotations

import re
import time
from collections import Counter

import numpy as np

from kvasir_tf.errors import KvasirError

SERIAL_TAG = "KVASIR"
HEADER_KEYS = ("model", "input", "arena_bytes")
FRAME_KEYS = ("class", "idx", "conf", "latency_us")
# class= of a frame below the model's abstain threshold (its idx and conf are still the top class's).
UNCERTAIN_LABEL = "uncertain"
DEFAULT_BAUD = 115200

_KV = re.compile(r"(\w+)=(\S+)")
_NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def _fields(line: str) -> dict | None:
    """key=value pairs of a KVASIR line, or None when it is not one."""
    line = line.strip().lstrip("\x00")
    if not line.startswith(SERIAL_TAG + " "):
        return None
    body = line[len(SERIAL_TAG) + 1:].split()
    out = {}
    for tok in body:
        m = _KV.fullmatch(tok)
        if not m:
            return {}
        out[m.group(1)] = m.group(2)
    return out


def parse_serial_line(line: str):
    """("header", dict) | ("frame", dict) | ("malformed", line) | (None, None) for other text."""
    kv = _fields(line)
    if kv is None:
        return None, None
    try:
        if kv and all(k in kv for k in FRAME_KEYS):
            conf = float(kv["conf"])
            frame = {"class": kv["class"], "idx": int(kv["idx"]), "conf": conf,
                     "latency_us": int(kv["latency_us"])}
            if "frame" in kv:
                frame["frame"] = int(kv["frame"])
            if not (0.0 <= conf <= 1.0) or frame["idx"] < 0 or frame["latency_us"] < 0:
                return "malformed", line
            return "frame", frame
        if kv and all(k in kv for k in HEADER_KEYS):
            w, _, h = kv["input"].partition("x")
            return "header", {"model": kv["model"], "input": [int(w), int(h)],
                              "arena_bytes": int(kv["arena_bytes"])}
    except ValueError:
        pass
    return "malformed", line


def parse_serial(lines) -> dict:
    """Latency (median/p90/mean, ms and us) and class counts from firmware serial lines."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    header, frames, malformed, other = None, [], [], 0
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        kind, value = parse_serial_line(line)
        if kind == "header":
            header = value
        elif kind == "frame":
            frames.append(value)
        elif kind == "malformed":
            malformed.append(value.strip())
        else:
            other += int(bool(line.strip()))
    lat = np.asarray([f["latency_us"] for f in frames], dtype=np.float64)
    counts = Counter(f["class"] for f in frames)
    summary = {
        "header": header,
        "frames": len(frames),
        "malformed": len(malformed),
        "malformed_examples": malformed[:3],
        "other_lines": other,
        "class_counts": dict(sorted(counts.items())),
        "uncertain": counts.get(UNCERTAIN_LABEL, 0),
        "mean_conf": float(np.mean([f["conf"] for f in frames])) if frames else None,
    }
    if frames:
        summary.update(latency_median_us=float(np.median(lat)), latency_p90_us=float(np.percentile(lat, 90)),
                       latency_mean_us=float(lat.mean()), latency_median_ms=float(np.median(lat)) / 1e3,
                       latency_p90_ms=float(np.percentile(lat, 90)) / 1e3)
    return summary


_BENCH_PATTERNS = {
    "timings": re.compile(r"Inference timings in us: Init: " + _NUM + r", First inference: " + _NUM
                          + r", Warmup \(avg\): " + _NUM + r", Inference \(avg\): " + _NUM),
    "memory": re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) "
                         r"\(MB\): init=" + _NUM + r" overall=" + _NUM),
    "peak": re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + _NUM),
    "size": re.compile(r"The input model file size \(MB\): " + _NUM),
    "init": re.compile(r"Initialized session in " + _NUM + r"\s*ms"),
    "threads": re.compile(r"Num threads: \[(\d+)\]"),
    "graph": re.compile(r"Graph: \[([^\]]+)\]"),
    "count": re.compile(r"count=(\d+)((?: \w+=" + _NUM + r")*)"),
}


def parse_benchmark_model(text: str) -> dict:
    """Figures from one ``benchmark_model`` run; latency in microseconds and milliseconds."""
    text = text.replace("\r", "")
    out = {}
    m = _BENCH_PATTERNS["timings"].search(text)
    if not m:
        raise KvasirError("no 'Inference timings in us:' line in the benchmark_model output; did the "
                          "run finish? re-run `adb shell .../benchmark_model --graph=... ` and save all output")
    init, first, warm, avg = (float(v) for v in m.groups())
    out.update(init_us=init, first_inference_us=first, warmup_avg_us=warm, inference_avg_us=avg,
               inference_avg_ms=avg / 1e3)
    if (m := _BENCH_PATTERNS["memory"].search(text)):
        out.update(memory_init_mb=float(m.group(1)), memory_overall_mb=float(m.group(2)))
    if (m := _BENCH_PATTERNS["peak"].search(text)):
        out["peak_memory_mb"] = float(m.group(1))
    if (m := _BENCH_PATTERNS["size"].search(text)):
        out["model_size_mb"] = float(m.group(1))
    if (m := _BENCH_PATTERNS["threads"].search(text)):
        out["num_threads"] = int(m.group(1))
    if (m := _BENCH_PATTERNS["graph"].search(text)):
        out["graph"] = m.group(1)
    # The last "count=" line is the measured run (the first one is warm-up).
    stats = None
    for m in _BENCH_PATTERNS["count"].finditer(text):
        kv = dict(re.findall(r"(\w+)=" + _NUM, m.group(2)))
        stats = {"count": int(m.group(1)), **{k: float(v) for k, v in kv.items()}}
    if stats:
        out["runs"] = stats["count"]
        for key in ("min", "max", "std", "median", "p5", "p95"):
            if key in stats:
                out[f"{key}_us"] = stats[key]
        if "median" in stats:
            out["inference_median_ms"] = stats["median"] / 1e3
    return out


def read_serial(port: str, baud: int = DEFAULT_BAUD, seconds: float = 10.0) -> list:
    """Lines read from the board's serial port for ``seconds`` (feed them to parse_serial)."""
    try:
        import serial  # pyserial
    except ImportError:
        raise KvasirError("reading the board needs pyserial: `pip install pyserial` "
                          "(or save the serial log to a file and parse that)") from None
    try:
        conn = serial.Serial(port, baudrate=baud, timeout=0.5)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise KvasirError(f"cannot open serial port {port} at {baud} baud ({exc}); check the cable, "
                          "the port name (ls /dev/ttyACM* /dev/ttyUSB*) and that no other program holds it") from None
    lines, end = [], time.monotonic() + float(seconds)
    with conn:
        while time.monotonic() < end:
            raw = conn.readline()
            if raw:
                lines.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    return lines
