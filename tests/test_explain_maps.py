"""Explainers: gradient maps of a QAT model, occlusion/RISE of a one-quadrant model (Keras and int8)."""
import numpy as np
import pytest

import kvasir_tf  # noqa: F401
import tensorflow as tf

from kvasir_tf.errors import KvasirError
from kvasir_tf.explain import gradients, perturbation
from kvasir_tf.explain import metrics as M

SIZE = 32
QAT_SIZE = 64       # a 2 x 2 last feature map, so Grad-CAM++ has a place to point at


def quadrant_model(size=SIZE, k=2.5):
    """Class 1 iff the top-left quadrant is bright; nothing else reaches the output."""
    h = size // 2
    x_in = tf.keras.Input((size, size, 3), name="pixels")
    x = tf.keras.layers.Cropping2D(((0, size - h), (0, size - h)))(x_in)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(2, activation="softmax")(x)
    model = tf.keras.Model(x_in, out)
    w = k / (3 * 127.5)
    model.layers[-1].set_weights([np.array([[-w, w]] * 3, np.float32), np.array([k, -k], np.float32)])
    return model


def quadrant_images(n=3, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    imgs[:, : size // 2, : size // 2] = rng.integers(190, 231, (n, size // 2, size // 2, 3))
    return imgs


def top_left(size=SIZE):
    m = np.zeros((size, size), bool)
    m[: size // 2, : size // 2] = True
    return m


@pytest.fixture(scope="module")
def quadrant_int8(tmp_path_factory):
    from kvasir_tf.convert import convert
    out = tmp_path_factory.mktemp("quadrant") / "quadrant_int8.tflite"
    rep = np.concatenate([quadrant_images(16, seed=1),
                          np.random.default_rng(2).integers(0, 256, (16, SIZE, SIZE, 3)).astype(np.uint8)])
    convert(quadrant_model(), out, "int8", representative=rep, class_names=["dark", "bright"],
            allow_fewer=True, verbose=False)
    return out


def _assert_lights_top_left(maps):
    mask = top_left()
    for m in maps:
        assert m.shape == (SIZE, SIZE) and m.max() == pytest.approx(1.0)
        assert M.pointing_game(m, mask) == 1.0
        assert m[mask].mean() > 4 * m[~mask].mean()
        assert M.energy_in_mask(m, mask) > 0.6, M.energy_in_mask(m, mask)   # uniform map: 0.25


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_perturbation_maps_light_the_quadrant_keras(method):
    cls = perturbation.EXPLAINERS[method]
    kw = {"n_masks": 300} if method == "rise" else {"window": 8}
    maps = cls(quadrant_model(), batch_size=25, **kw)(quadrant_images())
    _assert_lights_top_left(maps)


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_perturbation_maps_light_the_quadrant_int8(quadrant_int8, method):
    from kvasir_tf.runtime import TFLiteModel
    model = TFLiteModel(quadrant_int8)
    assert np.dtype(model.interpreter.get_input_details()[0]["dtype"]) == np.int8
    explainer = perturbation.EXPLAINERS[method](model, batch_size=25,
                                                **({"n_masks": 300} if method == "rise" else {"window": 8}))
    assert explainer.predict.batch_size == 25          # batched, not one invoke per mask
    probs = explainer.predict(quadrant_images().astype(np.float32))
    assert (probs.argmax(1) == 1).all()
    _assert_lights_top_left(explainer(quadrant_images()))


def test_default_batch_shrinks_with_the_image_area(quadrant_int8):
    assert perturbation.batch_for(96) == perturbation.MAX_BATCH
    assert perturbation.batch_for(224) == perturbation.BATCH_PIXELS // 224 ** 2 == 9
    assert perturbation.batch_for(512) == 1 and perturbation.batch_for(224, 32) == 32
    assert perturbation.predictor_for(str(quadrant_int8)).batch_size == perturbation.batch_for(SIZE)


def test_int8_and_keras_occlusion_agree_on_the_quadrant(quadrant_int8):
    imgs = quadrant_images(2)
    a = perturbation.Occlusion(quadrant_model(), window=8)(imgs)
    b = perturbation.Occlusion(str(quadrant_int8), window=8)(imgs)
    for x, y in zip(a, b):
        assert M.spearman(x, y) > 0.8 and M.top_k_iou(x, y, k=25) > 0.8


def test_vanilla_saliency_of_the_quadrant_model_is_zero_elsewhere():
    maps = gradients.VanillaSaliency(quadrant_model())(quadrant_images(2))
    assert np.all(maps[:, SIZE // 2:, :] == 0) and np.all(maps[:, :, SIZE // 2:] == 0)
    assert (maps[:, : SIZE // 2, : SIZE // 2] > 0).mean() > 0.9


@pytest.mark.parametrize("method", ["saliency", "gradcam++"])
def test_visualizer_is_built_once_per_model_and_the_score_passed_per_batch(method, monkeypatch):
    """Three batches, one tf-keras-vis visualizer; each batch's maps equal a fresh explainer's."""
    import tf_keras_vis
    built = []
    real_init = tf_keras_vis.ModelVisualization.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(tf_keras_vis.ModelVisualization, "__init__", counting_init)
    model, images = quadrant_model(), quadrant_images(6)
    explain = gradients.EXPLAINERS[method](model, batch_size=2)
    targets = np.array([0, 1, 0, 1, 1, 0])
    maps = explain(images, targets=targets)
    assert len(built) == 1
    for i in (0, 4):
        alone = gradients.EXPLAINERS[method](model, batch_size=2)(images[i:i + 2], targets=targets[i:i + 2])
        np.testing.assert_allclose(maps[i:i + 2], alone, atol=1e-6)
    assert len(built) == 3 and maps.max() > 0


@pytest.fixture(scope="module")
def qat_model():
    """A 64 px PACT-QAT MobileNetV2 whose batch-norm statistics come from one batch (an untrained
    network's activations vanish in inference mode, so every map would be legitimately zero)."""
    from kvasir_tf.model import build_mobilenetv2
    from kvasir_tf.qat import apply_qat, is_qat_model
    model = build_mobilenetv2(QAT_SIZE, 2, alpha=0.35, activation="pact", seed=0)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model = apply_qat(model, scheme="pact")
    assert is_qat_model(model)
    model(qat_images(16, seed=3).astype(np.float32), training=True)   # moving stats <- this batch
    return model


def qat_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, QAT_SIZE, QAT_SIZE, 3)).astype(np.uint8)


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "gradcam++", "integrated-gradients"])
def test_gradient_maps_of_a_qat_model_are_finite_and_not_zero(qat_model, method):
    kw = {"samples": 4} if method == "smoothgrad" else {"steps": 8} if method == "integrated-gradients" else {}
    maps = gradients.EXPLAINERS[method](qat_model, **kw)(qat_images(2))
    assert maps.shape == (2, QAT_SIZE, QAT_SIZE)
    assert np.isfinite(maps).all() and (maps >= 0).all() and maps.max() <= 1.0
    for m in maps:
        assert m.max() == pytest.approx(1.0) and (m > 0).mean() > 0.05


def test_smoothgrad_is_seeded(qat_model):
    imgs = qat_images(1, seed=1)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = gradients.SmoothGrad(qat_model, samples=3, seed=5)(imgs)
    b = gradients.SmoothGrad(qat_model, samples=3, seed=5)(imgs)
    c = gradients.SmoothGrad(qat_model, samples=3, seed=6)(imgs)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)                       # the seed picks the noise
    # tf-keras-vis draws from NumPy's global generator: the caller's stream is left as it was
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_sidecar_that_does_not_match_is_a_one_line_error(quadrant_int8, tmp_path):
    import shutil
    bad = tmp_path / "m.tflite"
    shutil.copy(quadrant_int8, bad)
    side = quadrant_int8.with_suffix(".json").read_text().replace('"sha256": "', '"sha256": "0')
    bad.with_suffix(".json").write_text(side)
    with pytest.raises(KvasirError) as exc:
        perturbation.Occlusion(str(bad))
    assert "sha256" in str(exc.value) and "\n" not in str(exc.value)


def test_wrong_image_size_and_non_keras_model_are_errors(quadrant_int8):
    with pytest.raises(KvasirError):
        perturbation.RISE(str(quadrant_int8), n_masks=10)(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(KvasirError):
        gradients.VanillaSaliency(object())
