"""TF-MOT QAT: PACT quantizers use the learned alpha, int8 conversion params, save/load."""
import numpy as np
import pytest

import kvasir_tf  # noqa: F401
import tensorflow as tf

from kvasir_tf import qat as q
from kvasir_tf.model_io import load_model, save_model
from kvasir_tf.qat import quantizers as qz
from kvasir_tf.qat.configs import PACTQuantizeConfig
from kvasir_tf.errors import KvasirError
from kvasir_tf.model import Preprocess, build_mobilenetv2
from kvasir_tf.pact import PACT
from kvasir_tf.preprocessing import INPUT_INT8_SCALE, INPUT_INT8_ZERO_POINT


def tiny_model(activation="pact", bits=8, alpha=6.0, seed=0):
    """pixels -> Preprocess -> Conv -> BN -> PACT/ReLU6 (the model output, to read its params)."""
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((8, 8, 3))
    x = Preprocess(name="preprocess")(inp)
    x = tf.keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(x)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    if activation == "pact":
        x = PACT(bits=bits, alpha_init=alpha, eta=1e-3, name="act")(x)
    else:
        x = tf.keras.layers.ReLU(6.0, name="act")(x)
    return tf.keras.Model(inp, x)


def pixels(n=16, lo=0, hi=256, seed=0):
    return np.random.RandomState(seed).randint(lo, hi, (n, 8, 8, 3)).astype("float32")


def to_int8_tflite(model, calib):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    interp = Interpreter(model_content=conv.convert(),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    return interp


def _wrapper(qat, name):
    return qat.get_layer("quant_" + name)


@pytest.mark.parametrize("bits", [8, 4])
def test_int8_pact_output_is_one_op_with_range_0_alpha(bits):
    qat = q.apply_qat(tiny_model(bits=bits), "pact")
    alpha = 1.3
    q.pact_alphas(qat)[0].assign(alpha)
    interp = to_int8_tflite(qat, pixels())
    scale, zero_point = interp.get_output_details()[0]["quantization"]
    assert scale == pytest.approx(alpha / 255, rel=1e-5)
    assert zero_point == -128
    ops = [d["op_name"] for d in interp._get_ops_details()]
    assert ops == ["MUL", "ADD", "CONV_2D"]  # the pixel map, then Conv+BN+PACT fused: no clip op


@pytest.mark.parametrize("scheme", ["default", "pact"])
def test_int8_input_is_raw_pixel_minus_128_whatever_the_calibration(scheme):
    qat = q.apply_qat(tiny_model("pact" if scheme == "pact" else "relu6"), scheme)
    calib = pixels(lo=60, hi=190)  # narrow data: a learned/calibrated range would not be 0..255
    qat(calib, training=True)  # what QAT training would do to a data-driven input range
    interp = to_int8_tflite(qat, calib)
    detail = interp.get_input_details()[0]
    assert detail["dtype"] == np.int8
    scale, zero_point = detail["quantization"]
    assert scale == pytest.approx(INPUT_INT8_SCALE, rel=1e-6) and zero_point == INPUT_INT8_ZERO_POINT
    # and the int8 model agrees with the QAT model on raw pixels fed as p - 128
    x = pixels(4, seed=3)
    out = interp.get_output_details()[0]
    got = []
    for img in x:
        interp.set_tensor(detail["index"], (img[None] - 128).astype(np.int8))
        interp.invoke()
        s, z = out["quantization"]
        got.append((interp.get_tensor(out["index"]).astype(np.float32) - z) * s)
    want = qat(x, training=False).numpy()
    # int8 rounding differs in a few places by one step; a clipped input range would not
    assert np.abs(np.concatenate(got) - want).mean() < 0.25 * out["quantization"][0]
    assert np.abs(np.concatenate(got) - want).max() <= 3.01 * out["quantization"][0]


def test_qat_pact_quantizer_range_is_the_learned_alpha():
    model = tiny_model(alpha=6.0)
    kernel = model.get_layer("conv").kernel
    kernel.assign(tf.reshape(tf.linspace(-2.0, 2.0, int(np.prod(kernel.shape))), kernel.shape))
    qat = q.apply_qat(model, "pact")
    wrapper = _wrapper(qat, "act")
    assert isinstance(wrapper.layer, PACT)
    assert isinstance(wrapper.quantize_config, PACTQuantizeConfig)
    assert wrapper.layer.alpha is q.pact_alphas(qat)[0]
    assert any(v is wrapper.layer.alpha for v in qat.trainable_weights)
    x = pixels(4)
    pre = tf.keras.Model(qat.input, _wrapper(qat, "bn").output)(x, training=False).numpy()
    assert pre.max() > 3 and pre.min() < 0
    for alpha in (2.0, 0.5):
        wrapper.layer.alpha.assign(alpha)
        y = qat(x, training=False).numpy()
        assert y.max() == pytest.approx(alpha, rel=1e-6)
        assert y.min() == 0.0
        levels = np.unique(y)
        assert np.diff(levels).min() == pytest.approx(alpha / 255, rel=1e-3)
        # same pre-activations, only alpha changed: every value is clip(x,0,alpha) on alpha/255 steps
        np.testing.assert_allclose(y, np.round(np.clip(pre, 0, alpha) * 255 / alpha) * alpha / 255,
                                   atol=1e-5)


def test_alpha_gradient_flows_in_the_qat_model():
    qat = q.apply_qat(tiny_model(alpha=0.5), "pact")
    alpha = q.pact_alphas(qat)[0]
    with tf.GradientTape() as tape:
        y = qat(pixels(4), training=True)
        loss = tf.reduce_sum(y)
    g = float(tape.gradient(loss, alpha))
    # d sum(y) / d alpha = number of pre-activations >= alpha (the PACT gradient)
    bn_out = tf.keras.Model(qat.input, _wrapper(qat, "bn").output)(pixels(4), training=True)
    assert g == pytest.approx(float(tf.reduce_sum(tf.cast(bn_out >= 0.5, tf.float32))), rel=1e-4)
    assert g > 0


def test_alpha_penalty_survives_qat():
    model = tiny_model(alpha=3.0)
    qat = q.apply_qat(model, "pact")
    assert sum(float(l) for l in qat.losses) == pytest.approx(1e-3 * 9.0)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_qat_save_reload_identical_predictions(tmp_path, suffix):
    qat = q.apply_qat(tiny_model(bits=4), "pact")
    qat.compile("adam", "mse")
    qat.fit(pixels(8), np.zeros((8, 8, 8, 4), np.float32), epochs=1, verbose=0)
    q.pact_alphas(qat)[0].assign(2.345)
    path = save_model(qat, tmp_path / f"qat{suffix}")
    loaded = load_model(path)
    assert q.is_qat_model(loaded)
    assert [float(a) for a in q.pact_alphas(loaded)] == pytest.approx([2.345])
    x = pixels(4, seed=5)
    np.testing.assert_array_equal(qat.predict(x, verbose=0), loaded.predict(x, verbose=0))
    for a, b in zip(qat.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_model_errors(tmp_path):
    with pytest.raises(KvasirError, match="not found"):
        load_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    with pytest.raises(KvasirError, match="bad.keras"):
        load_model(bad)
    with pytest.raises(KvasirError, match=".keras"):
        save_model(tiny_model(), tmp_path / "model.pb")


def test_apply_qat_refuses_mismatched_or_nested_models():
    with pytest.raises(KvasirError, match="scheme='pact'"):
        q.apply_qat(tiny_model("pact"), "default")
    with pytest.raises(KvasirError, match="PACT layers"):
        q.apply_qat(tiny_model("relu6"), "pact")
    with pytest.raises(KvasirError, match="unknown QAT scheme"):
        q.apply_qat(tiny_model("relu6"), "int4")
    inner = tiny_model("relu6")
    inp = tf.keras.Input((8, 8, 3))
    with pytest.raises(KvasirError, match="nested"):
        q.apply_qat(tf.keras.Model(inp, inner(inp)), "default")


@pytest.fixture(scope="module")
def mobilenet_qat():
    float_model = build_mobilenetv2(32, 3, alpha=0.35, activation="pact", seed=0)
    return float_model, q.apply_qat(float_model, "pact")


def test_mobilenet_pact_qat_structure(mobilenet_qat):
    float_model, qat = mobilenet_qat
    wrappers = [l for l in qat.layers if isinstance(getattr(l, "layer", None), PACT)]
    assert len(wrappers) == 35 == len(q.pact_alphas(float_model)) == len(q.pact_alphas(qat))
    assert all(isinstance(w.quantize_config, PACTQuantizeConfig) for w in wrappers)
    # the BN feeding each PACT is not quantized on its own (Conv+BN+PACT fuse into one int8 op)
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs8)
    for w in wrappers:
        bn = w._inbound_nodes[0].inbound_layers
        assert isinstance(bn.quantize_config, configs8.NoOpQuantizeConfig), bn.name
    assert not any(isinstance(l, tf.keras.Model) for l in qat.layers)


def test_mobilenet_pact_qat_trains_and_reloads(mobilenet_qat, tmp_path):
    _, qat = mobilenet_qat
    rng = np.random.RandomState(0)
    y = np.arange(12) % 3  # dark / mid / bright images: a task a few steps can fit
    x = (rng.uniform(0, 80, (12, 32, 32, 3)) + 85 * y[:, None, None, None]).astype("float32")
    before = [float(a) for a in q.pact_alphas(qat)]
    qat.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    losses = [float(qat.train_on_batch(x, y)) for _ in range(8)]
    assert np.isfinite(losses).all() and np.mean(losses[-2:]) < 0.7 * losses[0], losses
    after = [float(a) for a in q.pact_alphas(qat)]
    assert max(abs(a - b) for a, b in zip(after, before)) > 1e-3  # alphas are trained
    loaded = load_model(save_model(qat, tmp_path / "m.keras"))
    np.testing.assert_array_equal(qat.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_layout_transforms_follow_tfmot():
    """Our transform list is TF-MOT's default 8-bit list with two changes; fail when TF-MOT's changes."""
    import inspect
    import re
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_layout_transform as layout8)
    from kvasir_tf.qat import transforms
    tfmot_list = re.findall(r"default_8bit_transforms\.(\w+)\(\)",
                            inspect.getsource(layout8.Default8BitQuantizeLayoutTransform.apply))
    assert tuple(tfmot_list) == transforms.TFMOT_TRANSFORMS
    ours = [type(t).__name__ for t in transforms.layout_transforms()]
    expected = list(tfmot_list)
    expected[expected.index("InputLayerQuantize")] = "FixedRangeInputLayerQuantize"
    expected.insert(expected.index("Conv2DReshapeBatchNormQuantize"), "ConvBatchNormPACTQuantize")
    assert ours == expected


# ----------------------------------------------------------------------------- twice-differentiable STE
def _boundary_inputs(shape=(6, 5, 4), seed=0):
    """Values inside, outside and exactly on the quantization grid and the range's ends."""
    x = np.random.default_rng(seed).uniform(-2.5, 3.5, shape).astype("float32")
    x.flat[:6] = [-1.0, 1.5, 0.0, -1.0039216, 1.5058824, 2.0]
    return tf.constant(x)


FAKE_QUANTS = {  # name -> (ours, TensorFlow's op with the same arguments)
    "vars": (lambda x: qz.fake_quant_vars(x, -1.0, 1.5),
             lambda x: tf.quantization.fake_quant_with_min_max_vars(x, -1.0, 1.5)),
    "vars_narrow_4bit": (lambda x: qz.fake_quant_vars(x, -1.0, 1.5, num_bits=4, narrow_range=True),
                         lambda x: tf.quantization.fake_quant_with_min_max_vars(
                             x, -1.0, 1.5, num_bits=4, narrow_range=True)),
    "per_channel": (lambda x: qz.fake_quant_vars(x, [-1.0, -0.5, 0.2, -2.0], [1.5, 0.5, 2.0, 0.0],
                                                 per_channel=True),
                    lambda x: tf.quantization.fake_quant_with_min_max_vars_per_channel(
                        x, [-1.0, -0.5, 0.2, -2.0], [1.5, 0.5, 2.0, 0.0])),
    "args": (lambda x: qz.fake_quant_args(x, -1.0, 1.5),
             lambda x: tf.quantization.fake_quant_with_min_max_args(x, -1.0, 1.5)),
}


def _double_backprop(fq, x, w, twice=False):
    """(output, dL/dx, d sum|dL/dx| / dw) for L = sum(sin(fq(x * w)) * c)."""
    with (qz.twice_differentiable() if twice else _nullcontext()), tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            h = fq(x * w)
            loss = tf.reduce_sum(tf.sin(h) * tf.range(1.0, 5.0))
        g = inner.gradient(loss, x)
        l1 = tf.reduce_sum(tf.abs(g))
    return h.numpy(), g.numpy(), outer.gradient(l1, w).numpy()


@pytest.mark.parametrize("name", list(FAKE_QUANTS))
def test_fake_quant_forward_and_gradient_are_tensorflows_and_a_second_derivative_exists(name):
    ours, stock = FAKE_QUANTS[name]
    x, w = _boundary_inputs(), tf.Variable(np.float32([1.0, 0.9, 1.1, 1.3]))
    y, g, gg = _double_backprop(ours, x, w, twice=True)
    y_tf, g_tf, gg_tf = _double_backprop(stock, x, w)
    y_off, g_off, gg_off = _double_backprop(ours, x, w)     # outside the block: TensorFlow's own
    np.testing.assert_array_equal(gg_off, gg_tf)
    np.testing.assert_array_equal(y, y_tf)              # forward: TensorFlow's op, bit for bit
    np.testing.assert_array_equal(g, g_tf)              # first derivative: TensorFlow's STE
    # Second derivative: that of the same STE written with plain ops (forward held constant,
    # TensorFlow's gradient mask taken as a constant): y = c + (h - stop(h)) * mask.
    def plain(h):
        with tf.GradientTape() as t:
            t.watch(h)
            out = stock(h)
        mask = tf.stop_gradient(t.gradient(out, h))
        return tf.stop_gradient(out) + (h - tf.stop_gradient(h)) * mask

    _, g_plain, gg_plain = _double_backprop(plain, x, w)
    np.testing.assert_array_equal(g, g_plain)
    np.testing.assert_allclose(gg, gg_plain, rtol=1e-5, atol=1e-6)
    assert np.abs(gg).max() > 1e-3 and np.abs(gg - gg_tf).max() > 1e-3  # TF drops these paths


def test_fake_quant_range_gradients_equal_tensorflows():
    x = _boundary_inputs()
    lo, hi = tf.Variable(-1.0), tf.Variable(1.5)
    los, his = tf.Variable([-1.0, -0.5, 0.2, -2.0]), tf.Variable([1.5, 0.5, 2.0, 0.0])
    for per_channel, (a, b) in ((False, (lo, hi)), (True, (los, his))):
        grads = []
        for differentiable in (True, False):
            with tf.GradientTape() as tape:
                ctx = qz.stock_gradients() if not differentiable else qz.twice_differentiable()
                with ctx:
                    y = qz.fake_quant_vars(x, a, b, per_channel=per_channel)
                loss = tf.reduce_sum(y * tf.range(1.0, 5.0))
            grads.append([v.numpy() for v in tape.gradient(loss, [a, b])])
        for ours, theirs in zip(*grads):
            np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        assert np.abs(grads[0][0]).sum() > 0 and np.abs(grads[0][1]).sum() > 0


def _nullcontext():
    import contextlib
    return contextlib.nullcontext()


def _op_types(model):
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(
        tf.TensorSpec([1, 8, 8, 3])).graph
    return [op.type for op in graph.get_operations()]


def test_tfmot_fake_quants_are_routed_through_ours_only_inside_the_block():
    """The two TF-MOT functions every quantizer reaches; a TF-MOT change fails here first."""
    import inspect
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops
    model = q.apply_qat(tiny_model(), "pact")
    with qz.twice_differentiable():
        assert quant_ops._FakeQuantWithMinMaxVars is qz._tfmot_fake_quant
        assert quant_ops.FixedQuantize is qz._tfmot_fixed_quantize
        for name, stock in qz._STOCK.items():
            assert inspect.signature(stock) == inspect.signature(getattr(quant_ops, name)), name
        # a QAT model's quantizers use them: its input gradient passes our custom gradient
        types = _op_types(model)
    outside = _op_types(model)
    # input, conv kernel (per channel), PACT output: 3 custom gradients more than outside
    # (where only PACT's own STE has one), with TensorFlow's ops in both
    assert types.count("IdentityN") - outside.count("IdentityN") >= 3
    for t in (types, outside):
        assert "FakeQuantWithMinMaxArgs" in t and "FakeQuantWithMinMaxVarsPerChannel" in t


def test_plain_tfmot_model_keeps_tensorflows_gradient():
    """A model quantized by TF-MOT alone, after the seam is installed (by a block that ended,
    and by another model's saliency-guided steps), has TensorFlow's FakeQuant gradient: a second
    derivative through it drops every path (as TensorFlow's does), not ours."""
    import tensorflow_model_optimization as tfmot
    from kvasir_tf.saliency_training import SaliencyGuidedModel
    with qz.twice_differentiable():
        pass
    from tests.tiny_models import tiny_pact_cnn
    other = SaliencyGuidedModel(q.apply_qat(tiny_pact_cnn(16, 2, seed=0), "pact"))
    other.compile(tf.keras.optimizers.SGD(0.01), loss=tf.keras.losses.SparseCategoricalCrossentropy())
    other.train_on_batch(np.zeros((2, 16, 16, 3), "float32"), np.zeros(2, "int32"))
    inp = tf.keras.Input((6,))
    plain = tfmot.quantization.keras.quantize_model(
        tf.keras.Model(inp, tf.keras.layers.Dense(3)(tf.keras.layers.Dense(4, activation="relu")(inp))))
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 6)).astype("float32"))
    plain(x, training=True)  # learned activation ranges

    def l1_weight_gradient():
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = tf.reduce_sum(tf.sin(plain(x, training=False)) * tf.range(1.0, 4.0))
            l1 = tf.reduce_sum(tf.abs(inner.gradient(loss, x)))
        kernel = next(v for v in plain.trainable_variables if "kernel" in v.name)
        g = outer.gradient(l1, kernel)
        return np.zeros(kernel.shape) if g is None else g.numpy()

    default = l1_weight_gradient()
    with qz.stock_gradients():
        stock = l1_weight_gradient()
    with qz.twice_differentiable():
        ours = l1_weight_gradient()
    np.testing.assert_array_equal(default, stock)
    assert np.abs(ours).max() > 1e-4 and np.abs(ours - stock).max() > 1e-4
    graph = tf.function(lambda t: plain(t, training=True)).get_concrete_function(
        tf.TensorSpec([1, 6])).graph
    assert "IdentityN" not in [op.type for op in graph.get_operations()]


def test_twice_differentiable_is_per_thread():
    """The choice is a context variable: a block in one thread does not change another's."""
    import threading
    seen = {}
    inside, checked = threading.Event(), threading.Event()

    def other():
        inside.wait(10)
        seen["other"] = qz.is_twice_differentiable()
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with qz.twice_differentiable():
        seen["here"] = qz.is_twice_differentiable()
        inside.set()
        checked.wait(10)
    t.join()
    assert seen == {"here": True, "other": False} and not qz.is_twice_differentiable()


def test_converted_int8_model_is_unchanged_by_the_gradient(tmp_path, shared_data):
    """convert() of the same tiny PACT-QAT classifier with TensorFlow's FakeQuant gradient and
    with ours: same ops, same tensor scales/zero points, same outputs on real images."""
    from kvasir_tf.convert import convert
    from kvasir_tf.data.pipeline import load_images
    from kvasir_tf.runtime import TFLiteModel
    from tests.tiny_models import tiny_pact_cnn
    qat = q.apply_qat(tiny_pact_cnn(32, 2, seed=0, alpha_init=3.0), "pact")   # every quantizer kind
    train_pixels = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    qat(train_pixels, training=True)  # learned ranges, as after training
    images = load_images(sorted((shared_data / "kvasir-seg" / "images").glob("*.jpg"))[:16], 32)
    results = {}
    for name in ("stock", "ours"):
        ctx = qz.stock_gradients() if name == "stock" else qz.twice_differentiable()
        with ctx:
            res = convert(qat, tmp_path / f"{name}.tflite", "int8", class_names=["a", "b"],
                          verbose=False)
        m = TFLiteModel(res.tflite_path)
        quant = [(d["quantization_parameters"]["scales"].tolist(),
                  d["quantization_parameters"]["zero_points"].tolist(), d["shape"].tolist())
                 for d in m.interpreter.get_tensor_details()]
        results[name] = (res.ops, quant, m.predict(images))
    assert results["ours"][0] == results["stock"][0]
    assert results["ours"][1] == results["stock"][1]
    np.testing.assert_array_equal(results["ours"][2], results["stock"][2])
    assert np.ptp(results["ours"][2]) > 0 and len(results["ours"][1]) > 10


def test_preprocess_config_refuses_a_wrong_activation_count():
    """As TF-MOT's own configs: a wrong count is a ValueError naming the layer, not an IndexError
    or a silently dropped quantizer."""
    from kvasir_tf.model import Preprocess
    from kvasir_tf.qat.configs import PACTQuantizeConfig, PreprocessQuantizeConfig
    layer = Preprocess(name="pixels")
    with pytest.raises(ValueError, match="pixels with 0 activation parameters, but layer expects 1"):
        PreprocessQuantizeConfig().set_quantize_activations(layer, [])
    with pytest.raises(ValueError, match="pixels with 2 activation"):
        PreprocessQuantizeConfig().set_quantize_activations(layer, [tf.identity, tf.identity])
    with pytest.raises(ValueError, match="with 1 weight parameters, but layer expects 0"):
        PACTQuantizeConfig().set_quantize_weights(layer, [tf.zeros(1)])
    PreprocessQuantizeConfig().set_quantize_activations(layer, [tf.identity])
    assert layer.scale_activation is tf.identity
