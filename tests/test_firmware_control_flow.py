"""Control flow of microcontroller/common/main_functions.cc on the host: setup()'s order, every
error path printed on an open serial port, a failed capture reported by loop().

A control-flow test, not a TFLM test: TFLM is a fake (common/test/control_flow/fake_tflm.h) that
only logs its calls and fails the one a scenario names; platform.h and image_provider.h are fakes
too. What is real: main_functions.cc, detection_responder/serial_report/top_k and the generated
model_settings, model_data and micro_op_resolver.h (kvasir_tf.micro.codegen, kvasir_tf.artifact).
"""
import shutil
import subprocess
from pathlib import Path

import pytest

from kvasir_tf import artifact, device_logs
from kvasir_tf.micro import codegen
from kvasir_tf.micro.tflm import OP_RESOLVER_METHODS

ROOT = Path(__file__).resolve().parents[1]
COMMON = ROOT / "microcontroller" / "common"
FAKES = COMMON / "test" / "control_flow"
SOURCES = ("main_functions.cc", "detection_responder.cc", "serial_report.cc", "top_k.cc", "confidence.cc",
           "test/control_flow/control_flow_test.cc")
SIZE, CLASSES, OPS = 8, ["mucosa", "polyp", "stool"], ["CONV_2D", "MEAN", "SOFTMAX"]
ARENA_USED = 1234          # the fake interpreter's arena_used_bytes()
REGISTER = [OP_RESOLVER_METHODS[op] for op in sorted(OPS)]          # the generated resolver's calls
SETUP_ORDER = ["InitializeTarget", "BeginSerial", "GetModel", *REGISTER, "AllocateArena", "MicroInterpreter",
               "AllocateTensors", "InitCamera"]
# scenario -> (the last setup event it reaches, a word of the error line it must print)
SETUP_FAILURES = {"schema": ("GetModel", "schema version"), "register": (REGISTER[-1], "could not be registered"),
                  "arena": ("AllocateArena", "kTensorArenaSize"), "allocate": ("AllocateTensors", "AllocateTensors failed"),
                  "input_type": ("AllocateTensors", "input is not the int8 image"),
                  "input_size": ("AllocateTensors", "input is not the int8 image"),
                  "camera": ("InitCamera", "camera not found")}


TEMPERATURE = 1.5
SCORES = [-100, 100, -98]  # the fake interpreter's output (control_flow_test.cc)


def _generated(folder: Path, abstain_below=None) -> Path:
    """The generated sources the firmware compiles, for a small made-up model."""
    output = {"scale": 1 / 256, "zero_point": -128, "temperature": TEMPERATURE, "abstain_below": abstain_below}
    side = {"input": {"scale": 1.0, "zero_point": -128}, "output": output,
            "class_names": CLASSES, "tflite": "fake.tflite", "image_size": SIZE, "sha256": "c0ffee00" * 8}
    h, cc = codegen.model_settings_sources(
        side, arena_bytes={"minimum_bytes": 4000, "margin": "x1.10 rounded up to 1024 B", "arena_bytes": 5120},
        board={"name": "host"}, frame={"format": "rgb565", "width": 16, "height": 12, "bytes": 384})
    header, body = artifact.c_array_sources(b"TFL3" + bytes(60), "fake.json", "fake.tflite")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {"model_settings.h": h, "model_settings.cc": cc, "model_data.h": header, "model_data.cc": body,
                       codegen.RESOLVER_NAME: codegen.op_resolver_header(OPS, "fake.tflite")}.items():
        (folder / name).write_text(text)
    return folder


def _build(tmp_path_factory, abstain_below=None):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("no host g++: install it (apt-get install g++) to test the firmware's control flow")
    tmp = tmp_path_factory.mktemp("flow")
    gen = _generated(tmp / "generated", abstain_below)
    exe = tmp / "control_flow_test"
    cmd = [cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{FAKES}", f"-I{COMMON}", f"-I{gen}",
           *(str(COMMON / s) for s in SOURCES), str(gen / "model_data.cc"), str(gen / "model_settings.cc"),
           "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return exe


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    return _build(tmp_path_factory)


def _top_probability():
    from kvasir_tf import confidence
    return float(confidence.device_probabilities(SCORES, 1 / 256, -128, TEMPERATURE)[1])


def run(exe, scenario):
    res = subprocess.run([str(exe), scenario], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = [line.split(" ", 1) for line in res.stdout.splitlines()]
    events = [v for k, v in rows if k == "EVENT"]
    setup = events[events.index("setup") + 1:events.index("loop")]
    return {"events": events, "setup": setup, "lines": [v for k, v in rows if k == "LINE"],
            "lost": [v for k, v in rows if k == "LOST"], "stdout": res.stdout}


def test_setup_order_and_result_lines(firmware):
    r = run(firmware, "ok")
    assert r["setup"] == SETUP_ORDER and not r["lost"]
    assert r["events"].count("Invoke") == 2 and r["events"].count(f"GetImage {SIZE}x{SIZE}x3") == 2
    summary = device_logs.parse_serial(r["lines"])
    assert summary["header"] == {"model": "c0ffee00", "input": [SIZE, SIZE], "arena_bytes": ARENA_USED}
    assert summary["frames"] == 2 and summary["malformed"] == 0 and summary["class_counts"] == {"polyp": 2}
    # conf: the temperature-scaled probability (model_settings.h's kTemperature), to the printed 0.001.
    assert summary["mean_conf"] == pytest.approx(_top_probability(), abs=6e-4)
    assert abs(_top_probability() - (100 + 128) / 256) > 0.01          # T = 1.5 changes it


def test_below_the_threshold_the_firmware_reports_uncertain(tmp_path_factory):
    exe = _build(tmp_path_factory, abstain_below=round(_top_probability() + 0.05, 3))
    summary = device_logs.parse_serial(run(exe, "ok")["lines"])
    assert summary["class_counts"] == {device_logs.UNCERTAIN_LABEL: 2} and summary["uncertain"] == 2
    assert summary["mean_conf"] == pytest.approx(_top_probability(), abs=6e-4)
    lines = [line for line in run(exe, "ok")["lines"] if "class=" in line]
    assert all(" idx=1 " in line for line in lines)          # idx: still the top class


@pytest.mark.parametrize("scenario", sorted(SETUP_FAILURES))
def test_a_setup_failure_is_printed_on_the_open_port_and_stops_there(firmware, scenario):
    last, words = SETUP_FAILURES[scenario]
    r = run(firmware, scenario)
    assert not r["lost"], f"written before the serial port was opened: {r['lost']}"
    assert r["setup"] == SETUP_ORDER[:SETUP_ORDER.index(last) + 1]
    assert len(r["lines"]) == 1 and r["lines"][0].startswith("error: ") and words in r["lines"][0], r["lines"]
    assert not any(e.startswith("GetImage") or e == "Invoke" for e in r["events"])    # loop() does nothing


def test_capture_failure_is_reported_by_loop(firmware):
    r = run(firmware, "capture")
    assert [line for line in r["lines"] + r["lost"] if "capture" in line] == ["error: image capture failed"] * 2
    assert r["setup"] == SETUP_ORDER and not r["lost"] and "Invoke" not in r["events"]


def test_invoke_failure_is_reported_by_loop(firmware):
    r = run(firmware, "invoke")
    assert r["lines"][1:] == ["error: Invoke failed"] * 2 and device_logs.parse_serial(r["lines"])["frames"] == 0


def test_the_fake_resolver_has_every_method_the_generated_one_may_call():
    fake = (FAKES / "fake_tflm.h").read_text()
    assert [m for m in OP_RESOLVER_METHODS.values() if f"KVASIR_FAKE_ADD({m})" not in fake] == []
