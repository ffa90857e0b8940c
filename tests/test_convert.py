"""Conversion: every mode verified, the sidecar's pixel map, the C array, and every bad input."""
import json
import re
import zipfile

import numpy as np
import pytest

from kvasir_tf import artifact, runtime
from kvasir_tf import convert as C
from kvasir_tf.errors import KvasirError
from kvasir_tf.preprocessing import pixels_to_int8
from tests import convert_fixtures as F






def _run(tflite, x):
    it = runtime.make_interpreter(model_path=tflite)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _images(subset="test"):
    from kvasir_tf.data.pipeline import load_images
    return load_images(F.split().paths(subset), F.SIZE)


def test_int8_run_dir_is_integer_end_to_end():
    path = F.converted("int8")
    info = runtime.inspect_tflite(path.read_bytes())
    assert np.dtype(info["input"]["dtype"]) == np.int8 and np.dtype(info["output"]["dtype"]) == np.int8
    assert info["float_ops"] == []
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(info["ops"])
    side = json.loads(artifact.sidecar_path_for(path).read_text())
    assert side["mode"] == "int8" and side["quantization"] == "ptq"
    assert side["sha256"] == artifact.sha256_file(path) and side["size_bytes"] == path.stat().st_size
    assert side["image_size"] == F.SIZE and side["class_names"] == list(F.CLASSES)
    assert side["source"] == str(F.run_dir()) and side["source_kind"] == "run"
    # calibration came from the TRAINING split only, all of it (fewer than the default 300)
    assert side["calibration"]["num_images"] == len(F.split().train)
    assert any("fewer than 300" in n for n in side["notes"])
    assert (path.parent / "labels.txt").read_text().splitlines() == list(F.CLASSES)
    assert side["output"]["scale"] == pytest.approx(1 / 256) and side["output"]["zero_point"] == -128


def test_sidecar_pixel_map_by_hand():
    path = F.converted("int8")
    side = json.loads(artifact.sidecar_path_for(path).read_text())
    scale, zp = side["input"]["scale"], side["input"]["zero_point"]
    # PTQ pins the input range to the pixel range: the same q = p - 128 as QAT and the firmware
    assert (scale, zp) == (1.0, -128)
    imgs = _images("train")
    labels = F.split().labels("train")
    # the blend of two classes the float model is least sure about: an unsaturated output
    a, b = imgs[labels == 1][0].astype(np.float32), imgs[labels == 2][0].astype(np.float32)
    blends = np.stack([np.round((1 - w) * a + w * b) for w in np.linspace(0, 1, 41)]).astype(np.uint8)
    conf = F.trained_model().predict(blends.astype(np.float32), verbose=0).max(1)
    blend = blends[int(np.argmin(conf))]
    for img in (imgs[:1], blend[None]):
        by_hand = np.empty(img.shape, np.int8)
        for idx in np.ndindex(img.shape):  # the formula as written in the sidecar, pixel by pixel
            q = np.round(np.float32(img[idx]) / np.float32(scale))  # float32, as on a device
            by_hand[idx] = max(-128, min(127, int(q) + zp))
        lib = pixels_to_int8(img, scale, zp)
        assert np.array_equal(by_hand, lib)
        out_hand, out_lib = _run(path, by_hand), _run(path, lib)
        assert np.array_equal(out_hand, out_lib)
        probs = (out_hand.astype(np.float32) - side["output"]["zero_point"]) * side["output"]["scale"]
        keras = F.trained_model().predict(img.astype(np.float32), verbose=0)
        steps = np.abs(probs - keras).max() / side["output"]["scale"]
        assert steps <= F.INT8_OUTPUT_STEPS, steps
    assert keras.max() < 0.97  # the blend really exercised the non-saturated range


@pytest.mark.parametrize("mode", ["float", "fp16", "dynamic"])
def test_float_modes_load_run_and_match_keras(mode):
    path = F.converted(mode) if mode == "float" else None
    if path is None:
        path = C.convert(F.run_dir(), F._tmp() / f"m_{mode}.tflite", mode, verbose=False).tflite_path
    info = runtime.inspect_tflite(path.read_bytes())
    assert np.dtype(info["input"]["dtype"]) == np.float32 and np.dtype(info["output"]["dtype"]) == np.float32
    it = runtime.make_interpreter(model_path=path, delegates=False)
    dtypes = {np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
    expect = {"float": "float32", "fp16": "float16", "dynamic": "int8"}[mode]
    assert expect in dtypes
    if mode == "float":
        assert "int8" not in dtypes and "float16" not in dtypes
    img = _images()[:2].astype(np.float32)
    out = np.concatenate([_run(path, im[None]) for im in img])
    keras = F.trained_model().predict(img, verbose=0)
    assert np.abs(out - keras).max() < {"float": 1e-4, "fp16": 5e-3, "dynamic": 0.06}[mode]
    side = json.loads(artifact.sidecar_path_for(path).read_text())
    assert side["input"]["scale"] is None and side["mode"] == mode


def test_sizes_shrink_with_quantization():
    sizes = {m: F.converted(m).stat().st_size for m in ("int8", "float")}
    assert sizes["int8"] < sizes["float"]


def test_c_array_matches_tflite_bytes():
    path = F.converted("int8")
    cc = (path.parent / "model_data.cc").read_text()
    h = (path.parent / "model_data.h").read_text()
    data = path.read_bytes()
    assert artifact.parse_c_array(cc) == data
    assert "alignas(16) const unsigned char g_model_data[]" in cc
    assert int(re.search(r"g_model_data_len = (\d+);", cc).group(1)) == len(data)
    assert "#ifndef KVASIR_TF_MODEL_DATA_H_" in h and "extern const unsigned int g_model_data_len;" in h
    assert "Generated by kvasir_tf" in h and artifact.sidecar_path_for(path).name in h


def test_qat_model_uses_learned_ranges(tmp_path):
    from kvasir_tf import qat as Q
    qat = Q.apply_qat(F.trained_model())
    x = _images("train").astype(np.float32)
    qat(x, training=True)   # one pass sets the moving-average ranges, as a short fine-tune would
    res = C.convert(qat, tmp_path / "qat.tflite", "int8", class_names=list(F.CLASSES),
                    representative=F.split(), verbose=False)
    info = runtime.inspect_tflite(res.tflite_path.read_bytes())
    assert info["float_ops"] == [] and np.dtype(info["input"]["dtype"]) == np.int8
    assert res.sidecar["quantization"] == "qat"
    # the quantization scheme fixes the input range to the pixel range: q = p - 128
    assert res.sidecar["input"]["scale"] == pytest.approx(1.0) and res.sidecar["input"]["zero_point"] == -128


def test_debug_report_per_layer(tmp_path):
    res = C.convert(F.run_dir(), tmp_path / "dbg.tflite", "int8", debug_report=True, verbose=False)
    lines = res.debug_report.read_text().splitlines()
    header = lines[0].split(",")
    assert {"op_name", "scale", "mean_squared_error", "max_abs_error"} <= set(header)
    ops = {row.split(",")[0] for row in lines[1:]}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= ops


def test_representative_resized_and_said(tmp_path):
    imgs = np.random.default_rng(1).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    res = C.convert(F.trained_model(), tmp_path / "r.tflite", "int8", representative=imgs,
                    class_names=list(F.CLASSES), verbose=False)
    assert any("40x40" in n and "resized" in n for n in res.notes)
    assert res.sidecar["calibration"]["num_images"] == 6


def test_never_overwrites_without_force(tmp_path):
    out = tmp_path / "m.tflite"
    first = C.convert(F.run_dir(), out, "float", verbose=False)
    before = out.read_bytes()
    with pytest.raises(KvasirError, match="already exists.*--force"):
        C.convert(F.run_dir(), out, "float", verbose=False)
    assert out.read_bytes() == before
    # a second model in the same folder shares an identical labels.txt without --force
    C.convert(F.run_dir(), tmp_path / "m2.tflite", "dynamic", verbose=False)
    again = C.convert(F.run_dir(), out, "float", force=True, verbose=False)
    assert again.sha256 == first.sha256


# ----------------------------------------------------------------------------- CLI and bad input

def _cli(capsys, *argv):
    rc = C.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def test_cli_int8_on_run_dir(tmp_path, capsys):
    out = tmp_path / "cli" / "model.tflite"
    rc, err = _cli(capsys, F.run_dir(), "--int8", "--out", out, "--num-calibration", 5)
    assert rc == 0, err
    assert "op list" in err and "CONV_2D" in err
    assert json.loads(out.with_suffix(".json").read_text())["calibration"]["num_images"] == 5


def test_cli_missing_model(tmp_path, capsys):
    rc, err = _cli(capsys, tmp_path / "nope.keras", "--float")
    assert rc == 2 and "not found" in err and err.count("\n") == 1


def test_cli_not_a_keras_file(tmp_path, capsys):
    bad = tmp_path / "model.keras"
    bad.write_text("hello")
    rc, err = _cli(capsys, bad, "--float")
    assert rc == 2 and "not a Keras model file" in err and err.count("\n") == 1
    z = tmp_path / "z.keras"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("x.txt", "x")
    rc, err = _cli(capsys, z, "--float")
    assert rc == 2 and "not a Keras model" in err


def test_cli_tflite_given_as_source(capsys):
    rc, err = _cli(capsys, F.converted("float"), "--int8")
    assert rc == 2 and "already a TFLite flatbuffer" in err


def test_cli_unknown_custom_objects(tmp_path, capsys):
    import tensorflow as tf

    class Mystery(tf.keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    i = tf.keras.Input((F.SIZE, F.SIZE, 3))
    m = tf.keras.Model(i, tf.keras.layers.Dense(3, activation="softmax")(
        tf.keras.layers.GlobalAveragePooling2D()(Mystery()(i))))
    path = tmp_path / "mystery.keras"
    m.save(path)
    rc, err = _cli(capsys, path, "--float")
    assert rc == 2 and "Mystery" in err and err.count("\n") == 1


def test_cli_int8_float_model_without_data(tmp_path, capsys):
    path = tmp_path / "alone.keras"
    F.trained_model().save(path)
    rc, err = _cli(capsys, path, "--int8", "--out", tmp_path / "o.tflite")
    assert rc == 2 and "calibration" in err and "--manifest" in err
    # a bare dataset folder would be split anew (test images could leak into calibration): refused
    rc, err = _cli(capsys, path, "--int8", "--out", tmp_path / "o.tflite", "--data-dir", F.dataset_dir())
    assert rc == 2 and "needs calibration images" in err and "--manifest" in err
    with pytest.raises(KvasirError, match="without a split manifest"):
        C.convert(F.trained_model(), tmp_path / "o.tflite", "int8", representative=F.dataset_dir())
    assert not (tmp_path / "o.tflite").exists()
    # with the manifest it works, and the class names come from it
    rc, err = _cli(capsys, path, "--int8", "--out", tmp_path / "o.tflite",
                   "--manifest", F.run_dir() / "split.json")
    assert rc == 0, err
    assert (tmp_path / "labels.txt").read_text().splitlines() == list(F.CLASSES)


def test_calibration_reads_exactly_the_manifests_training_images(tmp_path, capsys):
    """A split with seed 3: calibration draws only its train images, never a test image."""
    from kvasir_tf.data.discovery import discover
    from kvasir_tf.data.split import save_manifest, stratified_split
    split = stratified_split(discover(F.dataset_dir()), seed=3)
    manifest = save_manifest(split, tmp_path / "split.json")
    path = tmp_path / "alone.keras"
    F.trained_model().save(path)
    rc, err = _cli(capsys, path, "--int8", "--out", tmp_path / "c.tflite", "--manifest", manifest)
    assert rc == 0, err
    cal = json.loads((tmp_path / "c.json").read_text())["calibration"]
    train = {rel for rel, _ in split.train}
    assert cal["split_seed"] == 3 and cal["subset"] == "train"
    assert len(cal["images"]) == cal["num_images"] == len(train)   # fewer than the default 300: all
    assert set(cal["images"]) == train
    assert not set(cal["images"]) & {rel for rel, _ in split.test}


def test_cli_fewer_calibration_images_than_asked(tmp_path, capsys):
    n_train = len(F.split().train)
    rc, err = _cli(capsys, F.run_dir(), "--int8", "--out", tmp_path / "a.tflite", "--num-calibration", 500)
    assert rc == 2 and f"only {n_train}" in err and "--allow-fewer" in err
    rc, err = _cli(capsys, F.run_dir(), "--int8", "--out", tmp_path / "a.tflite", "--num-calibration", 500,
                   "--allow-fewer")
    assert rc == 0 and "fewer than 500" in err
    assert json.loads((tmp_path / "a.json").read_text())["calibration"]["num_images"] == n_train


def test_cli_input_size_differs_from_run_config(tmp_path, capsys):
    run = tmp_path / "run"
    import shutil
    shutil.copytree(F.run_dir(), run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["image_size"] = 64
    (run / "config.json").write_text(json.dumps(cfg))
    rc, err = _cli(capsys, run, "--float", "--out", tmp_path / "s.tflite")
    assert rc == 0 and "image_size 64" in err and "resized to 32" in err


@pytest.mark.parametrize("flags,msg", [
    (["--int8", "--fp16"], "exactly one"),
    ([], "exactly one"),
    (["--float", "--num-calibration", "5"], "only apply to --int8"),
    (["--fp16", "--debug-report"], "only applies to --int8"),
])
def test_cli_bad_flag_combinations(flags, msg, tmp_path, capsys):
    rc, err = _cli(capsys, F.run_dir(), *flags, "--out", tmp_path / "x.tflite")
    assert rc == 2 and msg in err
    assert not (tmp_path / "x.tflite").exists()


def test_cli_overwrite_refused(tmp_path, capsys):
    out = tmp_path / "f.tflite"
    assert _cli(capsys, F.run_dir(), "--float", "--out", out)[0] == 0
    rc, err = _cli(capsys, F.run_dir(), "--float", "--out", out)
    assert rc == 2 and "--force" in err
    assert _cli(capsys, F.run_dir(), "--float", "--out", out, "--force")[0] == 0


def test_cli_out_existing_folder_receives_the_files(tmp_path, capsys):
    folder = tmp_path / "export_here"
    folder.mkdir()
    rc, err = _cli(capsys, F.run_dir(), "--float", "--out", folder)
    assert rc == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["labels.txt", "model_float.json", "model_float.tflite"]
    assert not (tmp_path / "export_here.tflite").exists() and not (tmp_path / "labels.txt").exists()


def test_tools_convert_is_the_same_command(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    tool = Path(__file__).resolve().parents[1] / "tools" / "convert.py"
    out = subprocess.run([sys.executable, str(tool), str(tmp_path / "missing"), "--float"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "not found" in out.stderr
    assert "I0000" not in out.stderr and "oneDNN" not in out.stderr   # TensorFlow's banners stay hidden


def test_calibrated_conversion_prints_no_converter_chatter(tmp_path):
    """The C++ calibrator writes `fully_quantize: ...` straight to the terminal, LiteRT an XNNPACK
    line when verification runs the model; hidden unless --verbose."""
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "kvasir_tf.convert", str(F.run_dir()), "--int8", "--out", str(tmp_path / "m.tflite")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "wrote " in out.stderr            # the summary goes to stderr
    assert "fully_quantize" not in out.stdout + out.stderr and "XNNPACK" not in out.stderr
    loud = subprocess.run(cmd + ["--force", "--verbose"], capture_output=True, text=True, timeout=600)
    assert loud.returncode == 0 and "fully_quantize" in loud.stdout + loud.stderr


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_model_with_code_is_refused_unless_trusted(tmp_path, capsys, suffix):
    """A Lambda layer's stored bytecode would write a file on loading: nothing runs, the error names the flag."""
    import tensorflow as tf
    marker = tmp_path / "pwned.txt"
    fn = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('x'), x)[1]")
    inp = tf.keras.Input((F.SIZE, F.SIZE, 3))
    out = tf.keras.layers.Dense(len(F.CLASSES), activation="softmax")(
        tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Lambda(fn)(inp)))
    model = tf.keras.Model(inp, out)
    marker.unlink(missing_ok=True)          # building the model ran the lambda once
    path = tmp_path / f"crafted{suffix}"
    model.save(path)
    marker.unlink(missing_ok=True)
    rc, err = _cli(capsys, path, "--float", "--out", tmp_path / "x.tflite", "--manifest",
                   F.run_dir() / "split.json")
    assert rc == 2 and "--trust-model" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "x.tflite").exists()


def test_truncated_tflite_and_corrupt_run_files_are_one_line_errors(tmp_path, capsys):
    import shutil
    from kvasir_tf import evaluate as E
    src = F.converted("int8")
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 3])   # keeps the TFL3 magic bytes
    assert E.main([str(bad), "--run", str(F.run_dir())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and len(err.strip().splitlines()) == 1
    for name in ("split.json", "config.json"):
        run = tmp_path / f"run_{name}"
        shutil.copytree(F.run_dir(), run)
        (run / name).write_text("{ not json")
        assert C.main([str(run), "--float", "--out", str(tmp_path / f"o_{name}.tflite")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and name in err and len(err.strip().splitlines()) == 1


def test_mobilenetv2_int8_has_no_float_op(tmp_path):
    """The real architecture (residual ADDs, Preprocess, softmax) converts to integer-only."""
    from kvasir_tf.model import build_mobilenetv2
    m = build_mobilenetv2(32, 3, alpha=0.35, seed=0)
    imgs = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    res = C.convert(m, tmp_path / "mnv2.tflite", "int8", representative=imgs,
                    class_names=list(F.CLASSES), verbose=False)
    info = runtime.inspect_tflite(res.tflite_path.read_bytes())
    assert info["float_ops"] == [] and info["ops"].count("ADD") == 11  # 10 residual + pixel map
    assert (res.sidecar["input"]["scale"], res.sidecar["input"]["zero_point"]) == (1.0, -128)


def test_per_tensor_is_smaller_by_the_channel_metadata(tmp_path):
    res = C.convert(F.run_dir(), tmp_path / "pt.tflite", "int8", per_tensor=True, verbose=False)
    it = runtime.make_interpreter(model_path=res.tflite_path, delegates=False)
    assert max(t["quantization_parameters"]["scales"].size for t in it.get_tensor_details()) == 1
    assert res.size_bytes < F.converted("int8").stat().st_size
    assert res.sidecar["weight_granularity"] == "per-tensor"
    with pytest.raises(KvasirError, match="per-tensor"):
        C.convert(F.run_dir(), tmp_path / "x.tflite", "float", per_tensor=True, verbose=False)


def _tensor_table(content):
    it = runtime.make_interpreter(model_content=content, delegates=False)
    it.allocate_tensors()
    return sorted((str(d["dtype"]), tuple(d["shape"]), tuple(d["quantization_parameters"]["scales"]),
                   tuple(d["quantization_parameters"]["zero_points"])) for d in it.get_tensor_details())


def test_serving_saved_model_converts_like_tensorflows_keras_path():
    """The converter reads a SavedModel of the inference function only; TF's from_keras_model is
    the reference: the same ops, tensors, scales and int8 outputs for a PACT-QAT model."""
    import tensorflow as tf
    from kvasir_tf import qat as Q
    from tests.tiny_models import tiny_pact_cnn
    model = Q.apply_qat(tiny_pact_cnn(size=16), "pact")
    x = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3)).astype(np.float32)
    model(x, training=True)                      # learned ranges from one batch
    ours = C._convert(model, C.MODES["int8"], qat=True)
    ref = tf.lite.TFLiteConverter.from_keras_model(model)
    ref.optimizations = [tf.lite.Optimize.DEFAULT]
    ref.inference_input_type = ref.inference_output_type = tf.int8
    with C._quiet():
        ref = ref.convert()
    assert runtime.inspect_tflite(ours)["ops"] == runtime.inspect_tflite(ref)["ops"]
    assert _tensor_table(ours) == _tensor_table(ref)
    for img in x.astype(np.uint8):
        np.testing.assert_array_equal(runtime.run_once(ours, img), runtime.run_once(ref, img))


def test_one_precedence_rule_picks_the_calibration_data(tmp_path):
    """representative, else manifest, else the run's own split -- for calibration and class names."""
    from pathlib import Path
    from kvasir_tf import rundir
    from kvasir_tf.data.split import load_manifest
    run = F.run_dir()
    src = rundir.Source(None, Path("m.keras"), "keras", split="the run's split")
    R = C.ConversionRequest
    images = np.zeros((2, 8, 8, 3), np.uint8)
    assert C.representative_source(R(representative=images, manifest=run), src) is images
    from_manifest = C.representative_source(R(manifest=run), src)
    assert from_manifest.train == load_manifest(run).train and from_manifest.train
    assert C.representative_source(R(), src) == "the run's split"
    bare = rundir.Source(None, Path("m.keras"), "keras")
    assert C.representative_source(R(), bare) is None
    names, notes = C._class_names(bare, len(F.CLASSES), R(), from_manifest)
    assert names == list(load_manifest(run).class_names) and notes == []
    names, notes = C._class_names(bare, 3, R(), images)
    assert names == ["class_0", "class_1", "class_2"] and "no class names known" in notes[0]
    with pytest.raises(TypeError, match="notes"):
        C.convert(run, tmp_path / "x.tflite", "float", notes=[])
