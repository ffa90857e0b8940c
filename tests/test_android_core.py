"""The Android app's pure-Kotlin core (mobile/android/core), compiled with kotlinc and run on JUnit 4.

Golden vectors come from the Python reference (kvasir_tf.golden over kvasir_tf.device_preprocessing)
and real Kvasir images; the int8 output tensors from a tiny model kvasir_tf converted; the model files
reach the Kotlin tests through kvasir-android-assets. The JVM tests write reports (which cases
they compared, the benchmark log their formatter produced) that the tests here check in Python.
The toolchain comes from tools/toolchains/kotlin.sh (npm kotlin-compiler, Debian junit4).
"""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kvasir_tf import device_logs, golden

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "mobile" / "android" / "core"
JARS = ("/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar")
TEST_CLASSES = ("CoreUnitTest", "BenchmarkTest", "GoldenVectorsTest", "ModelFilesTest", "AppStateMachineTest",
                "PickedImageTest", "FrameGeometryTest", "ConfidenceTest")
TIE_OUTPUTS = ([5, 9, 9, 1], [-128, -128, -128, -128], [0, 3, -1, 3], [1, 2, 3, 4], [127, -128, 127, 0],
               [-7, -8, -9, -6])


def load_assets_tool():
    from kvasir_tf import android_assets
    return android_assets


def find_kotlin():
    """(kotlinc, kotlin-stdlib.jar), or skip saying how to install them."""
    kotlinc = shutil.which("kotlinc")
    if kotlinc is None and shutil.which("npm"):
        root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True).stdout.strip()
        cand = Path(root) / "kotlin-compiler" / "bin" / "kotlinc"
        kotlinc = str(cand) if cand.is_file() else None
    missing = [what for what, ok in (("kotlinc (npm kotlin-compiler)", kotlinc), ("java", shutil.which("java")),
                                     ("junit4 (Debian)", all(Path(j).is_file() for j in JARS))) if not ok]
    if missing:
        pytest.skip(f"Kotlin core tests need {', '.join(missing)}: run tools/toolchains/kotlin.sh")
    stdlib = Path(kotlinc).resolve().parents[1] / "lib" / "kotlin-stdlib.jar"
    if not stdlib.is_file():
        pytest.skip(f"{stdlib} missing: reinstall with tools/toolchains/kotlin.sh")
    return kotlinc, stdlib


def real_images(shared_data):
    """Four real frames of different shapes: two Kvasir-SEG originals, a Kvasir v2 frame, and more."""
    from kvasir_tf.data.imageio import header_size, read_rgb
    seg = sorted((shared_data / "kvasir-seg" / "images").glob("*.jpg"))
    by_size = {}
    for f in seg:
        by_size.setdefault(header_size(f), f)
    sizes = sorted(by_size, key=lambda wh: wh[0] * wh[1])
    picks = [by_size[sizes[0]], by_size[sizes[-1]]]        # the smallest and the largest original
    v2 = sorted((shared_data / "kvasir-v2-partial" / "normal-cecum").glob("*.jpg"))
    picks += v2[:1]
    return [(p.stem[:12], read_rgb(p)) for p in picks]


def frame_cases(images):
    """rgb888 frames as a camera or the photo picker gives them: native size, portrait, tiny, odd."""
    import cv2

    def at(rgb, height, width):
        return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))

    cases = {}
    for i, (stem, rgb) in enumerate(images):
        h, w = rgb.shape[:2]
        cases[f"img{i}_{w}x{h}_native"] = (np.ascontiguousarray(rgb), "rgb888")
    cases["img0_480x640_portrait"] = (at(images[0][1], 640, 480), "rgb888")   # the crop is vertical
    cases["img2_61x45_small"] = (at(images[-1][1], 45, 61), "rgb888")         # below 67/96 px: boxes repeat
    cases["img1_501x333_odd"] = (at(images[1][1], 333, 501), "rgb888")        # odd sizes and crop offset
    return cases


def tflite_runner(tflite):
    from kvasir_tf.runtime import raw_runner
    return raw_runner(tflite)


@pytest.fixture(scope="module")
def golden_root(shared_data, tmp_path_factory):
    """model/ (a real tiny int8 model + outputs), ties/ (chosen outputs), half_up/ and odd/ (other maps, sizes)."""
    from tests import convert_fixtures as cf
    find_kotlin()                      # skip before the conversion when the JVM side cannot run
    root = tmp_path_factory.mktemp("android_golden")
    cases = frame_cases(real_images(shared_data))
    tflite = cf.converted("int8")
    load_assets_tool().install_assets(tflite, root / "model")
    run_model, out_map = tflite_runner(tflite)
    import json
    side = json.loads((root / "model" / "model.json").read_text())
    golden.write_golden(root / "model", cases, size=side["image_size"], scale=side["input"]["scale"],
                        zero_point=side["input"]["zero_point"], run_model=run_model, output_map=out_map)
    golden.write_golden(root / "half_up", cases, size=96, scale=2.0, zero_point=-3)
    # Output tensors with ties and every class winning somewhere: the tiny model's top-1 is one class.
    scores = iter(TIE_OUTPUTS)
    golden.write_golden(root / "ties", cases, size=32, run_model=lambda q: np.asarray([next(scores)], np.int8))
    golden.write_golden(root / "odd", cases, size=67, scale=0.75, zero_point=7)
    golden.write_confidence_golden(root, golden.confidence_cases())   # root/confidence.tsv
    return root


@pytest.fixture(scope="module")
def junit(golden_root, tmp_path_factory):
    """Compile core + tests with kotlinc, run JUnit; (stdout, report dir)."""
    kotlinc, stdlib = find_kotlin()
    work = tmp_path_factory.mktemp("android_junit")
    jar = work / "core-tests.jar"
    build = subprocess.run([kotlinc, str(CORE / "src" / "main" / "kotlin"), str(CORE / "src" / "test" / "kotlin"),
                            "-cp", ":".join(JARS), "-d", str(jar)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    report = work / "report"
    res = subprocess.run(["java", f"-Dkvasir.golden={golden_root}", f"-Dkvasir.report={report}", "-cp",
                          ":".join([str(jar), str(stdlib), *JARS]), "org.junit.runner.JUnitCore",
                          *(f"io.kvasirtf.core.{c}" for c in TEST_CLASSES)],
                         capture_output=True, text=True, timeout=600)
    return res, report


def rows(path):
    lines = Path(path).read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:] if line]


def test_every_jvm_test_ran_and_passed(junit):
    res, _ = junit
    declared = sum(len(re.findall(r"@Test\b", (CORE / "src/test/kotlin/io/kvasirtf/core" / f"{c}.kt").read_text()))
                   for c in TEST_CLASSES)
    assert res.returncode == 0, res.stdout[-4000:]
    m = re.search(r"OK \((\d+) tests?\)", res.stdout)
    assert m and int(m.group(1)) == declared, res.stdout[-2000:]


def test_kotlin_input_tensors_equal_the_python_reference(junit, golden_root):
    _, report = junit
    got = rows(report / "golden_inputs.tsv")
    want = [(d.name, c["name"]) for d in sorted(golden_root.iterdir()) if d.is_dir()
            for c in rows(d / "cases.tsv") if c["format"] == "rgb888"]
    assert [(r["folder"], r["name"]) for r in got] == want        # every case compared, none skipped
    assert len(want) == 4 * 6 and all(r["mismatches"] == "0" for r in got)
    for r in got:
        size = int(r["size"])
        assert int(r["bytes"]) == size * size * 3


def test_kotlin_top1_equals_the_python_reference_on_real_outputs(junit, golden_root):
    _, report = junit
    got = rows(report / "golden_top1.tsv")
    want = [(d, c) for d in ("model", "ties") for c in rows(golden_root / d / "cases.tsv")]
    assert [(r["folder"], r["name"]) for r in got] == [(d, c["name"]) for d, c in want]
    for r, (d, c) in zip(got, want):
        out = np.fromfile(golden_root / d / f"{c['name']}.output", np.int8)
        assert int(r["top1_kotlin"]) == int(r["top1_python"]) == int(c["top1"]) == int(np.argmax(out))
        scale, zp = float(c["output_scale"]), int(c["output_zero_point"])
        assert float(r["confidence"]) == pytest.approx((int(out.max()) - zp) * scale, abs=1e-6)
    assert [int(r["top1_kotlin"]) for r in got if r["folder"] == "ties"] == [1, 0, 1, 3, 0, 3]


def test_kotlin_temperature_and_abstain_equal_the_python_reference(junit, golden_root):
    """Every confidence case was computed by the Kotlin core, with the reference's decision."""
    _, report = junit
    got = rows(report / "confidence.tsv")
    want = rows(golden_root / golden.CONFIDENCE_FILE)
    assert [r["name"] for r in got] == [w["name"] for w in want]
    assert [int(r["decision"]) for r in got] == [int(w["decision"]) for w in want]
    assert max(float(r["max_abs_diff"]) for r in got) <= 1e-5
    assert any(int(w["decision"]) == -1 for w in want) and any(int(w["decision"]) >= 0 for w in want)


def test_the_app_benchmark_log_feeds_the_project_parser(junit):
    """The log the Kotlin formatter wrote (not a hand-written sample) through parse_benchmark_model."""
    _, report = junit
    text = (report / "benchmark_app.log").read_text()
    timing = dict(line.split("\t") for line in (report / "benchmark_timings.tsv").read_text().splitlines())
    runs = np.array([int(v) for v in timing["runs"].split(",")])
    warm = np.array([int(v) for v in timing["warmup"].split(",")])
    # As logcat shows it (adb logcat -s KvasirBench), with adb's CRLF.
    logcat = "".join(f"11-26 20:01:02.{i:03d}  4242  4260 I KvasirBench: {line}\r\n"
                     for i, line in enumerate(text.splitlines()))
    for sample in (text, logcat):
        r = device_logs.parse_benchmark_model(sample)
        assert r["runs"] == len(runs)
        assert r["init_us"] == int(timing["init"])
        assert r["first_inference_us"] == warm[0]
        assert r["warmup_avg_us"] == pytest.approx(warm.mean(), abs=0.05)
        assert r["inference_avg_us"] == pytest.approx(runs.mean(), abs=0.05)
        assert r["min_us"] == runs.min() and r["max_us"] == runs.max()
        assert r["median_us"] == np.sort(runs)[len(runs) * 50 // 100]
        assert r["num_threads"] == 4 and r["graph"] == "model.tflite"
    from kvasir_tf.compare import merge_device_logs
    log = report / "phone.log"
    log.write_text(logcat)
    merged = merge_device_logs({"sgt-pact-qat-int8": {}}, {"sgt-pact-qat-int8": str(log)})
    assert merged["sgt-pact-qat-int8"]["device_latency_ms"] == pytest.approx(np.sort(runs)[len(runs) // 2] / 1e3)


def test_a_changed_golden_byte_fails_the_jvm_tests(golden_root, tmp_path, junit):
    """The comparison can fail: one int8 input byte off makes GoldenVectorsTest report it."""
    bad = tmp_path / "bad"
    shutil.copytree(golden_root / "half_up", bad / "half_up")
    target = next((bad / "half_up").glob("*.input"))
    data = bytearray(target.read_bytes())
    data[77] = (data[77] + 1) % 256
    target.write_bytes(bytes(data))
    kotlinc, stdlib = find_kotlin()
    jar = next(Path(junit[1]).parent.glob("core-tests.jar"))
    res = subprocess.run(["java", f"-Dkvasir.golden={bad}", "-cp", ":".join([str(jar), str(stdlib), *JARS]),
                          "org.junit.runner.JUnitCore", "io.kvasirtf.core.GoldenVectorsTest"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert f"{target.stem}: 1 of {len(data)} int8 inputs differ" in res.stdout
