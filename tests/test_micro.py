"""kvasir_tf.micro: the folded int8 model, the TFLM check, the arena, the generated sources, the
budgets and the bad inputs (each an error before anything is written)."""
import json
import shutil

import numpy as np
import pytest

from kvasir_tf import artifact
from kvasir_tf.errors import KvasirError
from kvasir_tf.micro import budgets, codegen, export_micro, fold, tflm

SIZE = 32
CLASSES = ["blue", "green", "red"]


def _tiny_qat_model(seed=0):
    """Preprocess -> strided 'same' conv (padding at the border) -> depthwise -> 1x1 -> softmax, QAT."""
    import tensorflow as tf
    from kvasir_tf.model import Preprocess
    from kvasir_tf.qat import apply_qat
    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    i = tf.keras.Input((SIZE, SIZE, 3), name="pixels")
    x = Preprocess(name="preprocess")(i)
    for layer in (L.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
                  L.DepthwiseConv2D(3, padding="same", use_bias=False), L.Conv2D(16, 1, use_bias=False)):
        x = L.ReLU(6.0)(L.BatchNormalization()(layer(x)))
    x = L.Dense(len(CLASSES), activation="softmax", name="predictions")(L.GlobalAveragePooling2D()(x))
    return apply_qat(tf.keras.Model(i, x), scheme="default")


def _colour_images(n, seed):
    """Class c has RGB channel c bright: a task the tiny model learns to confident outputs."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(CLASSES)
    x = rng.integers(0, 90, (n, SIZE, SIZE, 3)).astype(np.uint8)
    x[np.arange(n), :, :, y] = rng.integers(150, 256, (n, SIZE, SIZE)).astype(np.uint8)
    return x, y


@pytest.fixture(scope="module")
def qat_int8(tmp_path_factory):
    """A trained tiny QAT model converted to int8 (its graph starts MUL, ADD, CONV_2D)."""
    from kvasir_tf.convert import convert
    x, y = _colour_images(96, 0)
    model = _tiny_qat_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x.astype("float32"), y, epochs=15, batch_size=16, verbose=0)
    out = tmp_path_factory.mktemp("qat") / "model_int8.tflite"
    convert(model, out, "int8", class_names=CLASSES, representative=x[:16], verbose=False)
    return out


@pytest.fixture(scope="module")
def exported(qat_int8, tmp_path_factory):
    x, y = _colour_images(30, 1)
    out = tmp_path_factory.mktemp("micro")
    # Default gate: TFLM and LiteRT's reference kernels can round a requantization differently (seen:
    # one FULLY_CONNECTED value 1 step apart on 1 of 30 images of this tiny model).
    return out, export_micro(qat_int8, out, "nano33ble", images=x, labels=y), x


def _nothing_written(out):
    return not out.exists() or not any(out.iterdir())


def _op_signature(model, op):
    """An operator as the device sees it: its code, options and every tensor's type, shape,
    quantization and constant bytes (not tensor indices, which the fold renumbers)."""
    g = model.subgraphs[0]
    code = model.operatorCodes[op.opcodeIndex]

    def tensor(i):
        if i < 0:
            return None
        t = g.tensors[i]
        q = t.quantization
        data = model.buffers[t.buffer].data
        return (t.type, tuple(t.shape), None if q is None or q.scale is None else tuple(q.scale),
                None if q is None or q.zeroPoint is None else tuple(q.zeroPoint),
                None if data is None else bytes(np.asarray(data, np.uint8)))

    return (max(code.builtinCode, code.deprecatedBuiltinCode), op.builtinOptionsType,
            repr(vars(op.builtinOptions)) if op.builtinOptions is not None else None,
            tuple(tensor(int(i)) for i in op.inputs), tuple(tensor(int(i)) for i in op.outputs))


def test_fold_starts_at_conv_and_changes_nothing_after_it(qat_int8):
    """The fold may change one rounding, at the first conv; everything after it must be the same
    graph, so no bound tuned on a trained model's outputs is needed."""
    content = qat_int8.read_bytes()
    before = fold.read_model(content)
    assert fold.op_names(before)[:3] == ["MUL", "ADD", "CONV_2D"]
    folded, info = fold.fold_pixel_map(content)
    after = fold.read_model(folded)
    ops = fold.op_names(after)
    assert ops[0] == "CONV_2D" and "MUL" not in ops and ops.count("ADD") == 0 and info["folded"]
    rest_before = [_op_signature(before, op) for op in before.subgraphs[0].operators[3:]]
    rest_after = [_op_signature(after, op) for op in after.subgraphs[0].operators[1:]]
    assert len(rest_after) == len(rest_before) > 3 and rest_after == rest_before
    # The first conv's output tensor keeps its quantization; its values move by one rounding.
    conv_before, conv_after = before.subgraphs[0].operators[2], after.subgraphs[0].operators[0]
    assert _op_signature(before, conv_before)[4] == _op_signature(after, conv_after)[4]
    x, _ = _colour_images(30, 2)
    q = (x.astype(np.int16) - 128).astype(np.int8)          # the device's bytes are unchanged
    conv_a, conv_b = tflm.first_conv_output(content, q), tflm.first_conv_output(folded, q)
    diff = np.abs(conv_a.astype(int) - conv_b.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.5, (diff.max(), (diff == 0).mean())
    # Folding is not a no-op: with the MUL/ADD dropped and nothing else changed, outputs go wrong.
    model = fold.read_model(content)
    mul, add, conv, _, _ = fold.find_pixel_map(model)
    g = model.subgraphs[0]
    g.operators[conv].inputs[0] = g.inputs[0]
    fold._remove_ops(g, {mul, add})
    a = tflm.run_reference(content, q)
    wrong = tflm.run_reference(fold.write_model(model), q)
    assert np.abs(wrong.astype(int) - a.astype(int)).max() > 2


def test_export_writes_checked_sources(exported):
    out, s, x = exported
    model = (out / "model_micro.tflite").read_bytes()
    side = json.loads((out / "model_micro.json").read_text())
    assert side["sha256"] == artifact.sha256_file(out / "model_micro.tflite")
    assert side["input"]["scale"] == 1.0 and side["input"]["zero_point"] == -128   # the pixel map
    assert side["micro"]["input_tensor_quantization"]["zero_point"] == 0
    assert artifact.parse_c_array((out / "model_data.cc").read_text()) == model
    check = s["tflm_check"]
    assert check["images"] == len(x) and check["max_abs_diff"] <= tflm.TOLERANCE_STEPS
    assert check["gate"] == {"tolerance_steps": tflm.TOLERANCE_STEPS, "min_top1_agreement": tflm.MIN_TOP1_AGREEMENT,
                             "strict": False}
    assert check["bit_exact"] == (check["max_abs_diff"] == 0)
    if not check["bit_exact"]:
        assert check["first_mismatch"]["op"] in s["ops"] and check["first_mismatch"]["max_abs_diff"] >= 1
    assert s["tflm_check"]["int8_accuracy"] > 0.9
    settings = (out / "model_settings.h").read_text()
    assert f"kTensorArenaSize = {s['arena']['arena_bytes']};" in settings
    assert "kInputZeroPoint = -128;" in settings and "kNumCols = 32;" in settings
    assert '"blue",\n    "green",\n    "red"' in (out / "model_settings.cc").read_text()
    assert (out / "labels.txt").read_text().split() == CLASSES


def test_arena_is_the_smallest_that_runs(exported):
    out, s, _ = exported
    minimum = s["arena"]["minimum_bytes"]
    path = out / "model_micro.tflite"
    assert tflm._ok(tflm._probe(path, minimum))
    assert not tflm._ok(tflm._probe(path, minimum - tflm.ARENA_ALIGN))
    assert minimum * tflm.ARENA_MARGIN <= s["arena"]["arena_bytes"] < minimum * tflm.ARENA_MARGIN + tflm.ARENA_ROUND


def test_op_resolver_registers_exactly_the_models_ops(exported):
    from kvasir_tf.runtime import inspect_tflite
    out, _, _ = exported
    model_ops = sorted(set(inspect_tflite((out / "model_micro.tflite").read_bytes())["ops"]))
    text = (out / codegen.RESOLVER_NAME).read_text()
    assert codegen.resolver_ops(text) == model_ops
    assert "MicroMutableOpResolver<kNumModelOps>" in text and f"kNumModelOps = {len(model_ops)};" in text
    # The comparison can fail: one registration fewer is noticed.
    dropped = text.replace("resolver.AddMean()", "resolver_unused()")
    assert codegen.resolver_ops(dropped) != model_ops


def test_budget_report_names_the_memory(exported):
    out, s, _ = exported
    report = json.loads((out / "budget.json").read_text())
    assert {r["budget"] for r in report["budgets"]} == {"flash", "ram"}
    ram = next(r for r in report["budgets"] if r["budget"] == "ram")
    assert ram["used"] == s["arena"]["arena_bytes"] + 176 * 144 * 2 + 8 * 1024 + 48 * 1024
    assert "| ram |" in (out / "budget.md").read_text()


def test_over_budget_is_an_error_naming_the_budget(qat_int8, tmp_path, monkeypatch):
    x, _ = _colour_images(4, 3)
    monkeypatch.setitem(budgets.BOARDS["nano33ble"], "ram_bytes", 100 * 1024)
    with pytest.raises(KvasirError, match="the ram budget is exceeded"):
        export_micro(qat_int8, tmp_path / "o", "nano33ble", images=x)
    assert _nothing_written(tmp_path / "o")
    with pytest.raises(KvasirError, match="the flash budget is exceeded"):
        budgets.check_budget("nano33ble", model_bytes=700_000, arena_bytes=1000,
                             frame=budgets.frame_spec("nano33ble", 96))
    report = budgets.check_budget("esp32s3", model_bytes=400_000, arena_bytes=160 * 1024,
                                  frame=budgets.frame_spec("esp32s3", 96))
    assert [r["budget"] for r in report["budgets"]] == ["flash", "internal_ram", "psram"]
    assert "PSRAM" in report["frame_memory"] and "internal SRAM" in report["arena_memory"]


def test_float_model_is_refused(tmp_path):
    from kvasir_tf.convert import convert
    x, _ = _colour_images(8, 4)
    import tensorflow as tf
    from kvasir_tf.model import Preprocess
    i = tf.keras.Input((SIZE, SIZE, 3))
    m = tf.keras.Model(i, tf.keras.layers.Dense(3, activation="softmax")(
        tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3)(Preprocess()(i)))))
    path = convert(m, tmp_path / "float.tflite", "float", class_names=CLASSES, verbose=False).tflite_path
    with pytest.raises(KvasirError, match="full-integer model"):
        export_micro(path, tmp_path / "o", images=x)
    assert _nothing_written(tmp_path / "o")


def test_sidecar_of_another_model_is_refused(qat_int8, tmp_path):
    x, _ = _colour_images(4, 5)
    path = tmp_path / "m.tflite"
    shutil.copy(qat_int8, path)
    side = json.loads(artifact.sidecar_path_for(qat_int8).read_text())
    side["sha256"] = "0" * 64
    artifact.sidecar_path_for(path).write_text(json.dumps(side))
    with pytest.raises(KvasirError, match="sha256"):
        export_micro(path, tmp_path / "o", images=x)
    artifact.sidecar_path_for(path).unlink()
    with pytest.raises(KvasirError, match="no sidecar"):
        export_micro(path, tmp_path / "o", images=x)
    assert _nothing_written(tmp_path / "o")


def test_op_tflm_lacks_is_refused(qat_int8, tmp_path):
    from tensorflow.lite.python import schema_py_generated as schema
    model = fold.read_model(qat_int8.read_bytes())
    code = model.operatorCodes[model.subgraphs[0].operators[-1].opcodeIndex]   # SOFTMAX -> RFFT2D
    code.builtinCode = schema.BuiltinOperator.RFFT2D
    code.deprecatedBuiltinCode = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
    path = tmp_path / "rfft.tflite"
    path.write_bytes(fold.write_model(model))
    side = json.loads(artifact.sidecar_path_for(qat_int8).read_text())
    side["sha256"] = artifact.sha256_file(path)
    artifact.sidecar_path_for(path).write_text(json.dumps(side))
    with pytest.raises(KvasirError, match="RFFT2D have no TFLite Micro kernel"):
        export_micro(path, tmp_path / "o", images=_colour_images(4, 6)[0])
    assert _nothing_written(tmp_path / "o")


@pytest.mark.parametrize("board,size,frame,match", [
    ("nano33ble", 160, None, "smaller than the 160x160 model input"),
    ("esp32s3", 96, {"format": "yuyv", "width": 161, "height": 120}, "odd width"),
    ("esp32s3", 96, {"format": "bgr", "width": 160, "height": 120}, "not one the preprocessing supports"),
])
def test_unsupported_camera_frame_is_refused(board, size, frame, match):
    with pytest.raises(KvasirError, match=match):
        budgets.frame_spec(board, size, frame)


def test_existing_export_needs_force(exported, qat_int8):
    out, _, x = exported
    with pytest.raises(KvasirError, match="--force"):
        export_micro(qat_int8, out, "nano33ble", images=x)


def _tflm_off_by(monkeypatch, steps, flip_top1=False):
    """TFLM made to give LiteRT's reference outputs with image 0 changed: its lowest score raised
    by ``steps`` (top-1 unchanged), or its top and lowest scores swapped (``flip_top1``)."""
    def fake(content, inputs, arena):
        out = tflm.run_reference(content, inputs).astype(np.int16)
        low, top = int(np.argmin(out[0])), int(np.argmax(out[0]))
        if flip_top1:
            out[0, low], out[0, top] = out[0, top], out[0, low]
        else:
            out[0, low] += steps
        return out.astype(np.int8)

    monkeypatch.setattr(tflm, "run_tflm", fake)


@pytest.mark.parametrize("steps", [1, 2])
def test_default_gate_accepts_a_step_or_two_with_the_same_top1(qat_int8, tmp_path, monkeypatch, steps):
    _tflm_off_by(monkeypatch, steps)
    s = export_micro(qat_int8, tmp_path / "o", "nano33ble", images=_colour_images(4, 7)[0])
    check = json.loads((tmp_path / "o" / "tflm_check.json").read_text())["tflm_check"]
    assert check["max_abs_diff"] == steps and check["images_differing"] == 1 and check["top1_agreement"] == 1.0
    assert not check["bit_exact"] and check["first_mismatch"]["op"] == "CONV_2D"
    assert check["gate"]["tolerance_steps"] == tflm.TOLERANCE_STEPS
    assert check["board_kernels"] == tflm.BOARD_KERNELS_NOTE
    assert "MEAN" in tflm.BOARD_KERNELS_NOTE and "CMSIS-NN" in tflm.BOARD_KERNELS_NOTE   # what differs on a board
    assert s["tflm_check"]["max_abs_diff"] == steps and (tmp_path / "o" / "model_data.cc").is_file()


@pytest.mark.parametrize("case", ["over the tolerance", "top-1 flipped", "strict, one step"])
def test_gate_refuses_with_a_one_line_fix_and_writes_nothing(qat_int8, tmp_path, monkeypatch, case):
    tol = tflm.TOLERANCE_STEPS
    if case == "over the tolerance":               # top-1 still equal
        _tflm_off_by(monkeypatch, tol + 1)
        kwargs, match = {}, (rf"by up to {tol + 1} int8 steps \(tolerance {tol}\) on 1 of 4 test images, first "
                             rf"at op 0 CONV_2D; nothing written \(--tflm-tolerance {tol + 1} accepts it\)$")
    elif case == "top-1 flipped":                  # a swap is far over any step tolerance: accept the steps
        _tflm_off_by(monkeypatch, 0, flip_top1=True)
        kwargs, match = {"tflm_tolerance": 255}, (r"top-1 differs from LiteRT's reference kernels on 1 of 4 test "
                                                  r"images .* nothing written \(--tflm-min-top1 0\.750 accepts it\)$")
    else:
        _tflm_off_by(monkeypatch, 1)
        kwargs, match = {"strict": True}, (rf"by up to 1 int8 steps \(tolerance 0\) on 1 of 4 test images.* nothing "
                                           rf"written \(without --strict the export accepts up to {tol} steps")
    with pytest.raises(KvasirError, match=match) as err:
        export_micro(qat_int8, tmp_path / "o", "nano33ble", images=_colour_images(4, 7)[0], **kwargs)
    assert "\n" not in str(err.value)
    assert _nothing_written(tmp_path / "o")


ARM_FLAGS = ["-std=c++17", "-Os", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
             "-ffunction-sections", "-fdata-sections", "-fno-exceptions", "-fno-rtti", "-Wall", "-Werror"]


def arm_size_report(common, generated, elf):
    """Link common/ + the generated model files for Cortex-M4F; (text, data, bss) and symbols."""
    import subprocess
    sources = [common / n for n in ("image_preprocess.cc", "top_k.cc", "serial_report.cc", "confidence.cc",
                                    "detection_responder.cc", "test/size_probe.cc")]
    sources += [generated / "model_data.cc", generated / "model_settings.cc"]
    subprocess.run(["arm-none-eabi-g++", *ARM_FLAGS, f"-I{common}", f"-I{generated}", *map(str, sources),
                    "-specs=nano.specs", "-specs=nosys.specs", "-Wl,--gc-sections", "-o", str(elf)],
                   check=True, capture_output=True, text=True)
    size = subprocess.run(["arm-none-eabi-size", str(elf)], check=True, capture_output=True, text=True)
    text, data, bss = (int(v) for v in size.stdout.splitlines()[1].split()[:3])
    nm = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], check=True, capture_output=True, text=True)
    symbols = {parts[-1]: (parts[2], int(parts[1], 16)) for parts in map(str.split, nm.stdout.splitlines())
               if len(parts) == 4}
    return text, data, bss, symbols


def test_cortex_m4_compile_and_size_within_the_nano_budget(exported, tmp_path):
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ missing: run tools/toolchains/arm-none-eabi.sh (apt-get install gcc-arm-none-eabi)")
    from pathlib import Path
    common = Path(__file__).resolve().parents[1] / "microcontroller" / "common"
    out, s, _ = exported
    text, data, bss, symbols = arm_size_report(common, out, tmp_path / "probe.elf")
    model_bytes, arena = s["model_bytes"], s["arena"]["arena_bytes"]
    kind, size = symbols["g_model_data"]
    assert kind in "Rr" and size == model_bytes            # the model stays in flash, not copied to RAM
    assert symbols["_ZL12tensor_arena"][1] == arena and bss >= arena + 176 * 144 * 2
    assert data < 4096                                      # nothing big initialised in RAM
    code = text + data - model_bytes
    assert 0 < code < 64 * 1024
    report = budgets.check_budget("nano33ble", model_bytes=model_bytes, arena_bytes=arena,
                                  frame=budgets.frame_spec("nano33ble", SIZE), code_bytes=code)
    assert all(r["ok"] for r in report["budgets"])


class _FakeBoard:
    """The sketch's serial test mode in Python: reads KIMG + pixels, answers with the firmware's
    result line for the int8 model's output (TFLM), after some boot chatter."""

    def __init__(self, content, size):
        self.content, self.size, self.out, self.frame = content, size, [b"booting\r\n"], 0

    def write(self, data):
        from kvasir_tf.micro import serial_test
        assert data[:4] == serial_test.MAGIC and len(data) == 4 + self.size * self.size * 3
        px = np.frombuffer(data[4:], np.uint8).reshape(1, self.size, self.size, 3)
        y = tflm.run_tflm(self.content, (px.astype(np.int16) - 128).astype(np.int8), 1 << 20)[0]
        i = int(np.argmax(y))
        self.out.append(f"KVASIR class={CLASSES[i]} idx={i} conf={(int(y[i]) + 128) / 256:.3f} "
                        f"latency_us={1000 + self.frame} frame={self.frame}\r\n".encode())
        self.frame += 1

    def readline(self):
        return self.out.pop(0) if self.out else b""


def test_serial_test_mode_host_side(exported):
    from kvasir_tf.micro import serial_test
    out, _, _ = exported
    x, y = _colour_images(9, 8)
    board = _FakeBoard((out / "model_micro.tflite").read_bytes(), SIZE)
    s = serial_test.run_serial_test(board, x, y)
    assert s["frames"] == 9 and s["malformed"] == 0 and s["latency_median_us"] == 1004
    assert s["accuracy"] == np.mean(np.asarray(s["predictions"]) == y) and s["accuracy"] > 0.6


def test_per_tensor_weights_are_smaller_and_close(exported):
    from kvasir_tf.micro import per_tensor
    out, _, x = exported
    content = (out / "model_micro.tflite").read_bytes()
    small, info = per_tensor.to_per_tensor(content)
    model = fold.read_model(small)
    g = model.subgraphs[0]
    weights = [g.tensors[op.inputs[1]] for name, op in zip(fold.op_names(model), g.operators)
               if name in per_tensor.WEIGHTED_OPS]
    assert weights and all(len(t.quantization.scale) == 1 for t in weights)
    assert info["channels"] == 8 + 8 + 16 and len(content) - len(small) >= 12 * info["channels"]
    q = (x.astype(np.int16) - 128).astype(np.int8)
    a, b = tflm.run_reference(content, q), tflm.run_reference(small, q)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 8
    pointwise, info2 = per_tensor.to_per_tensor(content, ("CONV_2D", "FULLY_CONNECTED"))
    assert info2["channels"] == 8 + 16 and len(small) < len(pointwise) < len(content)


def test_cli_exports_and_checks_on_a_runs_test_split(qat_int8, tmp_path, capsys):
    """kvasir-micro MODEL.tflite --run RUN: the run's test images check the model; a source with
    no test images is a one-line error with nothing written."""
    from kvasir_tf.micro.__main__ import main
    from tests import convert_fixtures as F      # a run directory with a 32 px blue/green/red split
    out = tmp_path / "esp"
    assert main([str(qat_int8), "--out", str(out), "--board", "esp32s3", "--run", str(F.run_dir())]) == 0
    printed = capsys.readouterr().out
    from kvasir_tf.micro.export import MAX_CHECK_IMAGES
    n = min(len(F.split().test), MAX_CHECK_IMAGES)
    assert f"TFLM vs LiteRT reference kernels on {n} test images" in printed
    assert f"passed the gate (<= {tflm.TOLERANCE_STEPS} steps" in printed and f"note: {tflm.BOARD_KERNELS_NOTE}" in printed
    side = json.loads((out / "model_micro.json").read_text())
    check = json.loads((out / "tflm_check.json").read_text())["tflm_check"]
    assert side["micro"]["board"] == "esp32s3" and check["images"] == n
    for name in ("model_data.cc", "model_settings.h", "model_settings.cc", "budget.md"):
        assert (out / name).is_file(), name
    assert f"wrote {out}" in printed
    bad = tmp_path / "bad"
    assert main([str(qat_int8), "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no test images" in err and err.count("\n") == 1
    assert _nothing_written(bad)
