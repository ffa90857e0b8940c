"""Saliency metrics and normalisation on hand-made maps with known answers."""
import numpy as np
import pytest

from kvasir_tf.errors import KvasirError
from kvasir_tf.explain import metrics as M
from kvasir_tf.explain.normalize import normalize


def ramp(h=16, w=16):
    return np.arange(h * w, dtype=np.float32).reshape(h, w) / (h * w - 1)


def test_normalize_range_size_and_zero_map():
    m = normalize(np.array([[-2.0, 0.0], [1.0, 4.0]]), 4, 4)
    assert m.shape == (4, 4) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == pytest.approx(1.0)
    assert np.all(normalize(np.full((3, 3), -1.0)) == 0)
    assert np.all(normalize(np.zeros((5, 5))) == 0)
    batch = normalize(np.stack([ramp(), 2 * ramp()]))
    np.testing.assert_allclose(batch[0], batch[1], rtol=1e-6)


def test_identical_maps_agree_perfectly():
    a = ramp()
    r = M.agreement(a, a.copy(), k=10)
    assert r["spearman"] == pytest.approx(1.0)
    assert r["ssim"] == pytest.approx(1.0)
    assert r["top_k_iou"] == pytest.approx(1.0)


def test_reversed_order_is_minus_one_and_disjoint_top_k():
    a = ramp()
    b = 1.0 - a
    assert M.spearman(a, b) == pytest.approx(-1.0)
    assert M.top_k_iou(a, b, k=20) == 0.0
    assert M.ssim(a, b) < 0.5


def test_constant_map_has_no_rank_correlation():
    assert np.isnan(M.spearman(ramp(), np.zeros((16, 16))))


def test_top_k_mask_size_and_k_range():
    m = M.top_k_mask(ramp(10, 10), 30)
    assert m.sum() == 30 and m.ravel()[-30:].all()
    # ties: an all-equal map still gives exactly k % of the pixels
    assert M.top_k_mask(np.ones((10, 10)), 25).sum() == 25
    with pytest.raises(KvasirError):
        M.top_k_mask(ramp(), 0)


def test_pointing_game_energy_and_mask_iou():
    mask = np.zeros((16, 16), bool)
    mask[:8, :8] = True
    inside = np.zeros((16, 16))
    inside[3, 4] = 1.0
    outside = np.zeros((16, 16))
    outside[12, 12] = 1.0
    assert M.pointing_game(inside, mask) == 1.0
    assert M.pointing_game(outside, mask) == 0.0
    assert M.energy_in_mask(inside, mask) == 1.0 and M.energy_in_mask(outside, mask) == 0.0
    assert M.energy_in_mask(np.ones((16, 16)), mask) == pytest.approx(0.25)  # uniform map: the area
    exact = mask.astype(float)
    assert M.mask_top_k_iou(exact, mask, k=25) == pytest.approx(1.0)
    assert M.mask_top_k_iou(1 - exact, mask, k=25) == 0.0
    # a plateau of maxima mostly outside is a miss
    plateau = np.zeros((16, 16))
    plateau[6:16, 6:16] = 1.0
    assert M.pointing_game(plateau, mask) == 0.0


def test_mask_of_another_size_is_a_one_line_error():
    with pytest.raises(KvasirError) as exc:
        M.pointing_game(ramp(), np.zeros((8, 8), bool))
    assert "\n" not in str(exc.value) and "size" in str(exc.value)


def _quadrant_predict(pixels):
    """A 'model' that only looks at the texture (pixel spread) of the top-left quadrant."""
    x = np.asarray(pixels, np.float32)
    h = x.shape[1] // 2
    z = (x[:, :h, :h].std(axis=(1, 2, 3)) - 35.0) / 5.0
    p1 = 1.0 / (1.0 + np.exp(-z))
    return np.stack([1 - p1, p1], axis=1)


def quadrant_image(size=32, seed=0):
    """Flat mucosa-like background, a high-contrast texture in the top-left quadrant."""
    rng = np.random.default_rng(seed)
    img = rng.uniform(90, 110, (size, size, 3)).astype(np.float32)
    img[: size // 2, : size // 2] = rng.uniform(0, 255, (size // 2, size // 2, 3))
    return img


def test_deletion_insertion_rank_the_evidence():
    img = quadrant_image()
    good = np.zeros((32, 32), np.float32)
    good[:16, :16] = 1.0
    good += ramp(32, 32) * 1e-3                  # a strict order inside both regions
    bad = 1.0 - good                             # ranks the true evidence last
    g = M.deletion_insertion(_quadrant_predict, img, good, 1, steps=16, n_random=3)
    b = M.deletion_insertion(_quadrant_predict, img, bad, 1, steps=16, n_random=3)
    assert g["deletion_auc"] < g["deletion_random_auc"] - 0.1
    assert g["insertion_auc"] > g["insertion_random_auc"] + 0.1
    assert b["deletion_auc"] > b["deletion_random_auc"] + 0.1
    assert b["insertion_auc"] < b["insertion_random_auc"] - 0.1
    assert len(g["deletion_curve"]) == 17 and g["deletion_curve"][0] == pytest.approx(g["insertion_curve"][-1])


def test_summarize_mean_and_interval():
    s = M.summarize([0.0, 1.0] * 50, seed=0)
    assert s["mean"] == pytest.approx(0.5) and s["n"] == 100
    assert 0.35 < s["lo"] < 0.5 < s["hi"] < 0.65
    assert M.summarize([float("nan"), 0.3])["n"] == 1
    assert M.summarize([])["n"] == 0 and M.format_ci(M.summarize([])) == "n/a"
    assert M.format_ci({"mean": 0.5, "lo": 0.4, "hi": 0.6, "n": 3}) == "0.50 [0.40, 0.60]"
