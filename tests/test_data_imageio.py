"""imageio: every kind of bad or unusual file, the resize contract, overlay masking."""
import cv2
import numpy as np
import pytest

from kvasir_tf.data import imageio
from kvasir_tf.data.overlays import SCOPEGUIDE_BOX, TEXT_BOX, mask_overlays, overlay_mask
from kvasir_tf.errors import DataError
from tests.conftest import write_image


def _jpeg_bytes(w=64, h=48, seed=0):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes(), img


def test_jpeg_decodes_as_rgb(tmp_path):
    img = np.zeros((30, 40, 3), np.uint8)
    img[..., 2] = 255  # red in OpenCV's BGR
    p = tmp_path / "red.jpg"
    cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    out = imageio.read_rgb(p)
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert out[..., 0].mean() > 250 and out[..., 1:].mean() < 5  # RGB order: red first


def test_png_is_lossless(tmp_path):
    p = write_image(tmp_path / "x.png", 33, 21, seed=3)
    assert np.array_equal(imageio.read_rgb(p), cv2.imread(str(p))[:, :, ::-1])


def test_rgba_png_drops_alpha(tmp_path):
    bgra = np.random.default_rng(1).integers(0, 256, (20, 25, 4), dtype=np.uint8)
    bgra[..., 3] = 0  # fully transparent: colour must still come through, alpha ignored
    p = tmp_path / "rgba.png"
    cv2.imwrite(str(p), bgra)
    out = imageio.read_rgb(p)
    assert out.shape == (20, 25, 3)
    assert np.array_equal(out, bgra[..., 2::-1])


def test_greyscale_becomes_three_equal_channels(tmp_path):
    p = write_image(tmp_path / "grey.png", 20, 10, seed=2, channels=1)
    grey = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    out = imageio.read_rgb(p)
    assert out.shape == (10, 20, 3)
    for c in range(3):
        assert np.array_equal(out[..., c], grey)


def test_16bit_png_scaled_to_8bit(tmp_path):
    img16 = np.full((8, 8, 3), 0xABCD, np.uint16)
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), img16)
    out = imageio.read_rgb(p)
    assert out.dtype == np.uint8 and np.all(out == 0xAB)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jpg: empty file \(0 bytes\)"):
        imageio.read_rgb(p)


def test_truncated_jpeg(tmp_path):
    data, _ = _jpeg_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: truncated JPEG.*re-download"):
        imageio.read_rgb(p)
    with pytest.raises(DataError, match="truncated JPEG"):
        imageio.check_file(p)  # the cheap header check catches it too


def test_corrupt_jpeg(tmp_path):
    # JPEG start and end markers around garbage: passes the header check, fails the decode.
    garbage = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    p = tmp_path / "bad.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0" + garbage.replace(b"\xff\xd9", b"\x00\x00") + b"\xff\xd9")
    imageio.check_file(p)
    with pytest.raises(DataError, match=r"bad\.jpg: corrupt image \(could not be decoded\)"):
        imageio.read_rgb(p)


def test_non_image_with_image_extension(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("these are my notes, not a picture\n")
    with pytest.raises(DataError, match=r"notes\.jpg: not an image .*remove it"):
        imageio.read_rgb(p)


def test_huge_image_refused_before_decoding(tmp_path):
    p = tmp_path / "huge.jpg"
    cv2.imwrite(str(p), np.zeros((8000, 8000), np.uint8))
    with pytest.raises(DataError, match=r"huge\.jpg: image too large \(8000x8000 = 64 MP.*downscale"):
        imageio.check_file(p)
    with pytest.raises(DataError, match="too large"):
        imageio.read_rgb(p)


@pytest.mark.parametrize("w,h", [(37, 23), (1, 1), (4000, 12)])
def test_bmp_header_size(tmp_path, w, h):
    p = tmp_path / "x.bmp"
    cv2.imwrite(str(p), np.zeros((h, w, 3), np.uint8))
    assert imageio.header_size(p) == (w, h) == imageio.read_rgb(p).shape[1::-1]


def test_min_side_rule(tmp_path):
    m = imageio.MIN_IMAGE_SIDE
    for ok in [(m, m), (m, 4000), (1920, 1072), None]:    # None: size unknown, decode checks it
        imageio.check_min_side(tmp_path / "ok.jpg", ok)
    for w, h in [(1, 1), (4000, m - 1), (m - 1, 4000)]:
        with pytest.raises(DataError, match=rf"tiny\.jpg: image too small \({w}x{h}: shorter side "
                                            rf"{min(w, h)} px < {m} px.*; remove it from the class folder"):
            imageio.check_min_side(tmp_path / "tiny.jpg", (w, h))


def test_missing_file_says_not_found(tmp_path):
    p = tmp_path / "gone.jpg"
    for fn in (imageio.read_rgb, imageio.check_file):
        with pytest.raises(DataError, match=r"gone\.jpg: file not found \(deleted or moved.*restore it"):
            fn(p)


def test_header_size_matches_decode(shared_data):
    files = sorted((shared_data / "kvasir-seg" / "images").glob("*.jpg"))[:10]
    for f in files:
        h, w = imageio.read_rgb(f).shape[:2]
        assert imageio.header_size(f) == (w, h)


def test_resize_centre_crops_wide_and_tall():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 100:200] = 200  # only the centred square is bright
    out = imageio.resize(wide, 50)
    assert out.shape == (50, 50, 3) and np.all(out == 200)
    tall = np.zeros((300, 100, 3), np.uint8)
    tall[100:200] = 77
    assert np.all(imageio.resize(tall, 20) == 77)


def test_resize_area_averages_when_downscaling():
    img = np.zeros((64, 64, 3), np.uint8)
    img[::2, ::2] = 255  # one in four pixels bright: INTER_AREA gives the mean, not aliasing
    out = imageio.resize(img, 16)
    assert np.allclose(out, 255 / 4, atol=1)


def test_overlay_mask_geometry():
    m = overlay_mask(576, 720)
    assert m[int(0.8 * 576), int(0.1 * 720)]        # ScopeGuide inset
    assert m[int(0.3 * 576), int(0.15 * 720)]       # text column
    assert not m[288, 360]                           # centre of the field of view
    assert not m[int(0.3 * 576), int(0.6 * 720)]
    frac = m.mean()
    expected = ((TEXT_BOX[2] - TEXT_BOX[0]) * (TEXT_BOX[3] - TEXT_BOX[1])
                + (SCOPEGUIDE_BOX[2] - SCOPEGUIDE_BOX[0]) * (SCOPEGUIDE_BOX[3] - SCOPEGUIDE_BOX[1]))
    assert abs(frac - expected) < 0.01


def test_overlays_removed_on_a_real_frame(shared_data):
    f = next((shared_data / "kvasir-v2-partial" / "dyed-lifted-polyps").glob("*.jpg"))
    img = imageio.read_rgb(f)
    assert img.shape[:2] == (576, 720)

    def green_inset_pixels(a):
        r, g, b = (a[..., i].astype(int) for i in range(3))
        return int(((g > 120) & (g > r + 60) & (b > 80) & (b < g)).sum())

    assert green_inset_pixels(img) > 10_000          # the green ScopeGuide box is there
    out = mask_overlays(img)
    assert green_inset_pixels(out) < 200
    assert np.array_equal(out[200:400, 300:500], img[200:400, 300:500])  # tissue untouched
    assert out is not img and img.any()
