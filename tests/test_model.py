"""MobileNetV2 builder: flat graph, pixel map inside, ReLU6 -> PACT swap, weights from a file."""
import numpy as np
import pytest

import kvasir_tf  # noqa: F401
import tensorflow as tf

from kvasir_tf.errors import KvasirError
from kvasir_tf.model import Preprocess, build_mobilenetv2, copy_weights, has_nested_model
from kvasir_tf.pact import PACT

SIZE, ALPHA = 32, 0.35


def _relu6_names(model):
    return [l.name for l in model.layers
            if isinstance(l, tf.keras.layers.ReLU) and l.max_value == 6.0]


@pytest.fixture(scope="module")
def relu6_model():
    return build_mobilenetv2(SIZE, 5, alpha=ALPHA, seed=1)


@pytest.fixture(scope="module")
def pact_model():
    return build_mobilenetv2(SIZE, 5, alpha=ALPHA, activation="pact", pact_bits=4,
                             pact_alpha_init=5.0, pact_eta=0.01, seed=1)


def test_flat_with_preprocess_first_and_softmax_head(relu6_model):
    m = relu6_model
    assert not has_nested_model(m)
    assert isinstance(m.layers[1], Preprocess) and m.layers[1].input is m.input
    assert m.output_shape == (None, 5)
    assert m.layers[-1].get_config()["activation"] == "softmax"
    x = np.random.RandomState(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    pre = tf.keras.Model(m.input, m.layers[1].output)(x).numpy()
    np.testing.assert_allclose(pre, x / 127.5 - 1.0, atol=1e-6)
    saved = m.get_weights()
    p = m(x, training=True).numpy()  # batch statistics: random-init features do not vanish
    m.set_weights(saved)  # training=True moved the BN statistics of the shared fixture
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert p.min() >= 0


def test_pact_replaces_every_relu6(relu6_model, pact_model):
    relus = _relu6_names(relu6_model)
    assert len(relus) == 35  # MobileNetV2: Conv1, 17 x (expand,) depthwise, out_relu
    assert _relu6_names(pact_model) == []
    pacts = [l for l in pact_model.layers if isinstance(l, PACT)]
    assert [l.name for l in pacts] == relus
    assert {(l.bits, l.alpha_init, l.eta) for l in pacts} == {(4, 5.0, 0.01)}
    assert not has_nested_model(pact_model)
    assert len(pact_model.losses) == 35  # one alpha penalty per PACT layer
    assert float(tf.add_n(pact_model.losses)) == pytest.approx(35 * 0.01 * 25.0, rel=1e-5)


def test_pact_model_keeps_the_relu6_weights(relu6_model, pact_model):
    # same seed -> same init; the swap must copy, not re-initialise, every weight
    for name in ("Conv1", "block_5_depthwise_BN", "predictions"):
        for a, b in zip(relu6_model.get_layer(name).get_weights(),
                        pact_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_seed_repeats_and_differs():
    a = build_mobilenetv2(SIZE, 3, alpha=ALPHA, seed=7).get_layer("Conv1").get_weights()[0]
    b = build_mobilenetv2(SIZE, 3, alpha=ALPHA, seed=7).get_layer("Conv1").get_weights()[0]
    c = build_mobilenetv2(SIZE, 3, alpha=ALPHA, seed=8).get_layer("Conv1").get_weights()[0]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


@pytest.fixture(scope="module")
def backbone_weights(tmp_path_factory):
    tf.keras.utils.set_random_seed(123)
    base = tf.keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False,
                                             alpha=ALPHA, weights=None)
    path = tmp_path_factory.mktemp("w") / "mobilenet_v2_notop.h5"
    base.save_weights(str(path))
    return path, base


@pytest.mark.parametrize("activation", ["relu6", "pact"])
def test_weights_from_file(backbone_weights, activation):
    path, base = backbone_weights
    m = build_mobilenetv2(SIZE, 4, alpha=ALPHA, weights=str(path), activation=activation, seed=0)
    for name in ("Conv1", "block_16_project_BN", "Conv_1"):
        for a, b in zip(base.get_layer(name).get_weights(), m.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_imagenet_path_uses_keras_download(backbone_weights, monkeypatch):
    """weights='imagenet' goes through Keras' get_file; served from a local file here."""
    from tf_keras.src.applications import mobilenet_v2
    path, base = backbone_weights
    requested = []

    def fake_get_file(fname, origin, **kwargs):
        requested.append(fname)
        return str(path)

    monkeypatch.setattr(mobilenet_v2.data_utils, "get_file", fake_get_file)
    m = build_mobilenetv2(96, 3, alpha=ALPHA, weights="imagenet", activation="pact")
    assert requested and "no_top" in requested[0] and "0.35" in requested[0]
    np.testing.assert_array_equal(base.get_layer("Conv1").get_weights()[0],
                                  m.get_layer("Conv1").get_weights()[0])


def test_weights_file_errors(tmp_path, backbone_weights):
    with pytest.raises(KvasirError, match="not found"):
        build_mobilenetv2(SIZE, 3, alpha=ALPHA, weights=str(tmp_path / "nope.h5"))
    with pytest.raises(KvasirError, match="same alpha"):
        build_mobilenetv2(SIZE, 3, alpha=1.0, weights=str(backbone_weights[0]))
    with pytest.raises(KvasirError, match="ImageNet weights"):
        build_mobilenetv2(SIZE, 3, alpha=0.6, weights="imagenet")


@pytest.mark.parametrize("kwargs", [dict(num_classes=1), dict(image_size=16), dict(dropout=1.0),
                                    dict(activation="relu")])
def test_bad_arguments(kwargs):
    args = dict(image_size=SIZE, num_classes=3, alpha=ALPHA) | kwargs
    with pytest.raises(KvasirError):
        build_mobilenetv2(args.pop("image_size"), args.pop("num_classes"), **args)


def test_copy_weights_float_checkpoint_into_pact(relu6_model):
    other = build_mobilenetv2(SIZE, 5, alpha=ALPHA, activation="pact", seed=99)
    n = copy_weights(relu6_model, other)
    assert n == sum(1 for l in relu6_model.layers if l.weights)
    np.testing.assert_array_equal(relu6_model.get_layer("Conv_1").get_weights()[0],
                                  other.get_layer("Conv_1").get_weights()[0])
    with pytest.raises(KvasirError, match="do not match"):
        copy_weights(relu6_model, build_mobilenetv2(SIZE, 4, alpha=ALPHA))
