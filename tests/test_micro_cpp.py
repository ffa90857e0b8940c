"""microcontroller/common/ (C++) against the Python reference: golden vectors from real images.

The host g++ builds common/ with test/golden_test.cc; every case must give the reference's int8
input byte for byte and its top-1, and the printed lines must parse with kvasir_tf.device_logs.
"""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kvasir_tf import device_logs, golden

ROOT = Path(__file__).resolve().parents[1]
COMMON = ROOT / "microcontroller" / "common"
SOURCES = ("image_preprocess.cc", "top_k.cc", "serial_report.cc", "test/golden_test.cc")
FRAME_SIZES = ((120, 160), (144, 176), (97, 130), (64, 80))   # QQVGA, QCIF, odd, smaller than 96


def host_build(tmp_path_factory, name, sources):
    """``sources`` (paths under common/) built with the host g++ into an executable ``name``."""
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("no host g++: install it (apt-get install g++) to test microcontroller/common")
    exe = tmp_path_factory.mktemp("cpp") / name
    cmd = [cxx, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{COMMON}",
           *(str(COMMON / s) for s in sources), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


@pytest.fixture(scope="module")
def golden_test(tmp_path_factory):
    return host_build(tmp_path_factory, "golden_test", SOURCES)


def real_rgb(shared_data, count):
    import cv2
    files = sorted((shared_data / "kvasir-seg" / "images").glob("*.jpg"))[::97][:count]
    return [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]


def camera_cases(images):
    cases = {}
    for i, rgb in enumerate(images):
        for h, w in FRAME_SIZES:
            for fmt, frame in golden.camera_frames(rgb, h, w).items():
                cases[f"img{i}_{w}x{h}_{fmt}"] = (frame, fmt)
    return cases


def run(exe, folder):
    return subprocess.run([str(exe), str(folder)], capture_output=True, text=True)


def test_preprocessing_bit_exact_on_real_frames(golden_test, shared_data, tmp_path):
    cases = camera_cases(real_rgb(shared_data, 4))
    folder = golden.write_golden(tmp_path / "g96", cases, size=96)
    res = run(golden_test, folder)
    assert res.returncode == 0, res.stdout[-2000:]
    assert res.stdout.count("\nok ") + res.stdout.startswith("ok ") == len(cases) == 48


def test_non_unit_input_map_rounds_half_up_like_python(golden_test, shared_data, tmp_path):
    cases = camera_cases(real_rgb(shared_data, 1))
    folder = golden.write_golden(tmp_path / "gs", cases, size=64, scale=0.5, zero_point=-3)
    q = np.fromfile(folder / "img0_160x120_rgb888.input", np.int8)
    assert (q == 127).any() and q.min() == -3        # the map really clamps and shifts here
    res = run(golden_test, folder)
    assert res.returncode == 0, res.stdout[-2000:]


def test_a_changed_byte_fails(golden_test, shared_data, tmp_path):
    cases = dict(list(camera_cases(real_rgb(shared_data, 1)).items())[:3])
    folder = golden.write_golden(tmp_path / "gbad", cases, size=96)
    target = folder / f"{next(iter(cases))}.input"
    data = bytearray(target.read_bytes())
    data[1234] = (data[1234] + 1) % 256
    target.write_bytes(bytes(data))
    res = run(golden_test, folder)
    assert res.returncode == 1 and "differs from the reference at byte 1234" in res.stdout


def test_model_top1_and_serial_lines(golden_test, shared_data, tmp_path):
    """A real int8 model's outputs: C++ top-1 = the reference's, and the lines parse."""
    from tests import convert_fixtures as cf
    from kvasir_tf.runtime import raw_runner
    run_model, output_map = raw_runner(cf.converted("int8"))
    cases = camera_cases(real_rgb(shared_data, 3))
    folder = golden.write_golden(tmp_path / "gm", cases, size=cf.SIZE, run_model=run_model,
                                 output_map=output_map)
    res = run(golden_test, folder)
    assert res.returncode == 0, res.stdout[-2000:]
    summary = device_logs.parse_serial(res.stdout)
    assert summary["frames"] == len(cases) and summary["malformed"] == 0
    assert summary["header"]["input"] == [cf.SIZE, cf.SIZE]
    expected = [golden.top1(np.fromfile(folder / f"{n}.output", np.int8)) for n in cases]
    got = [int(line.split("idx=")[1].split()[0]) for line in res.stdout.splitlines() if "idx=" in line]
    assert got == expected


def test_top1_ties_take_the_lowest_index(golden_test, shared_data, tmp_path):
    scores = iter([[5, 9, 9, 1], [-128, -128, -128, -128], [0, 3, -1, 3]])
    cases = dict(list(camera_cases(real_rgb(shared_data, 1)).items())[:3])
    folder = golden.write_golden(tmp_path / "gt", cases, size=32,
                                 run_model=lambda q: np.asarray([next(scores)], np.int8))
    res = run(golden_test, folder)
    assert res.returncode == 0, res.stdout[-2000:]
    assert [int(x.split("idx=")[1].split()[0]) for x in res.stdout.splitlines() if "idx=" in x] == [1, 0, 1]


@pytest.fixture(scope="module")
def golden_test_m4(tmp_path_factory):
    """The same golden test built for Cortex-M4F and run under QEMU's mps2-an386 (semihosting)."""
    if shutil.which("arm-none-eabi-g++") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("arm-none-eabi-g++ or qemu-system-arm missing: run tools/toolchains/arm-none-eabi.sh")
    elf = tmp_path_factory.mktemp("m4") / "golden_m4.elf"
    qemu = COMMON / "test" / "qemu"
    cmd = ["arm-none-eabi-g++", "-std=c++17", "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
           "-mfpu=fpv4-sp-d16", "-Wall", f"-I{COMMON}", *(str(COMMON / s) for s in SOURCES),
           "-x", "c", str(qemu / "startup.c"), "-specs=rdimon.specs", "-T", str(qemu / "mps2.ld"),
           "-Wl,--gc-sections", "-o", str(elf)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return elf


def run_m4(elf, folder):
    return subprocess.run(["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting-config",
                           f"enable=on,target=native,arg=golden_m4,arg={folder}", "-kernel", str(elf)],
                          capture_output=True, text=True, timeout=600)


def test_preprocessing_bit_exact_on_cortex_m4_under_qemu(golden_test_m4, shared_data, tmp_path):
    """The target ISA (Thumb-2, FPv4 single precision for the quantize step) gives the same bytes."""
    cases = camera_cases(real_rgb(shared_data, 2))
    folder = golden.write_golden(tmp_path / "g", cases, size=96, scale=0.5, zero_point=-3)
    res = run_m4(golden_test_m4, folder)
    assert res.returncode == 0 and f"{len(cases)} cases, 0 failed" in res.stdout, res.stdout[-2000:]
    target = folder / f"{next(iter(cases))}.input"
    data = bytearray(target.read_bytes())
    data[77] ^= 1
    target.write_bytes(bytes(data))
    res = run_m4(golden_test_m4, folder)
    assert res.returncode != 0 and "differs from the reference at byte 77" in res.stdout


@pytest.fixture(scope="module")
def confidence_test(tmp_path_factory):
    return host_build(tmp_path_factory, "confidence_test", ("confidence.cc", "test/confidence_test.cc"))


def test_temperature_and_abstain_equal_the_python_reference(confidence_test, tmp_path):
    """The firmware's temperature-scaled probabilities and "uncertain" decision on golden vectors."""
    from kvasir_tf import confidence
    cases = golden.confidence_cases()
    tsv = golden.write_confidence_golden(tmp_path, cases)
    res = subprocess.run([str(confidence_test), str(tsv)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:]
    got = {line.split()[1]: int(line.split()[2]) for line in res.stdout.splitlines() if line.startswith("ok ")}
    assert list(got) == list(cases)
    want = {n: int(confidence.decide(confidence.device_probabilities(q, s, z, t), b)[0])
            for n, (q, s, z, t, b) in cases.items()}
    assert got == want
    assert sum(d == confidence.UNCERTAIN for d in got.values()) >= 10     # both branches exercised
    assert len({d for d in got.values() if d >= 0}) >= 3


def test_a_changed_temperature_fails_the_cpp_check(confidence_test, tmp_path):
    tsv = golden.write_confidence_golden(tmp_path, golden.confidence_cases())
    lines = tsv.read_text().splitlines()
    cols = lines[3].split("\t")
    cols[3] = repr(float(cols[3]) * 1.01)
    tsv.write_text("\n".join(lines[:3] + ["\t".join(cols)] + lines[4:]) + "\n")
    res = subprocess.run([str(confidence_test), str(tsv)], capture_output=True, text=True)
    assert res.returncode == 1 and res.stdout.count("FAIL ") == 1, res.stdout[-1000:]
