"""Kvasir-SEG loading, field-of-view detection and the polyp/mucosa patch builder."""
import logging

import cv2
import numpy as np
import pytest

from kvasir_tf.data.discovery import discover, mask_path
from kvasir_tf.data.imageio import MIN_IMAGE_SIDE, read_rgb
from kvasir_tf.data.fov import fov_mask, overlay_boxes
from kvasir_tf.data.kvasir_seg import PATCH_INDEX_NAME, build_patch_dataset, load_kvasir_seg, main, read_mask
from kvasir_tf.errors import DataError, KvasirError

# Real frames with a known overlay (found by looking at the data).
GREEN_INSET = "cjyzu9th0qt4r0a46pyl4zik0"   # 720x576 frame with the green ScopeGuide inset
BLACK_BOX = "cju1egx9pvz2n0988eoy8jp23"     # inset blanked out with a black box
MIN_FRACTION = 0.6


@pytest.fixture(scope="module")
def seg_dir(shared_data):
    return shared_data / "kvasir-seg"


@pytest.fixture(scope="module")
def patches(seg_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("patches") / "p"
    return build_patch_dataset(seg_dir, out, patch_size=64, patches_per_image=2,
                               polyp_min_fraction=MIN_FRACTION, seed=0, limit=20)


def _frame(h=300, w=360, inset=None):
    """A lit disk of textured 'mucosa' on black, optionally with a lower-left inset box."""
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    yy, xx = np.mgrid[:h, :w]
    disk = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.48 * h) ** 2
    img[disk] = (np.array([190, 100, 90]) + (tex[disk].astype(int) - 128) // 4).clip(0, 255)
    if inset is not None:
        img[int(h * 0.7):, : int(w * 0.3)] = inset
    return img


@pytest.mark.parametrize("inset,kind", [((20, 150, 115), "green-inset"), ((0, 0, 0), "black-box")])
def test_fov_excludes_border_and_inset_on_a_drawn_frame(inset, kind):
    img = _frame(inset=inset)
    fov = fov_mask(img)
    h, w = fov.shape
    assert not fov[[0, 0, -1, -1], [0, -1, 0, -1]].any()          # black corners
    assert fov[h // 2 - 20:h // 2 + 20, w // 2 - 20:w // 2 + 20].all()  # centre of the disk
    assert not fov[int(h * 0.7):, : int(w * 0.3)].any()             # the inset
    kinds = [k for k, _ in overlay_boxes(img)]
    assert kind in kinds
    assert not (fov & (img.max(axis=2) < 18)).any()                 # nothing black inside


def test_drawn_frame_without_inset_keeps_lower_left_tissue():
    fov = fov_mask(_frame())
    h, w = fov.shape
    assert fov[int(h * 0.75), int(w * 0.3)]  # the disk's lower-left tissue is not cut away
    assert "black-box" not in [k for k, _ in overlay_boxes(_frame())]


def test_loader_pairs_all_500(seg_dir):
    samples = load_kvasir_seg(seg_dir)
    assert len(samples) == 500
    assert all(s.image.stem == s.mask.stem for s in samples)
    assert samples == sorted(samples, key=lambda s: s.name)


@pytest.mark.parametrize("name,kind", [(GREEN_INSET, "green-inset"), (BLACK_BOX, "black-box")])
def test_fov_on_real_frames_with_an_inset(seg_dir, name, kind):
    img = read_rgb(seg_dir / "images" / f"{name}.jpg")
    fov = fov_mask(img)
    h, w = fov.shape
    assert not fov[[0, 0, -1, -1], [0, -1, 0, -1]].any()
    boxes = [b for k, b in overlay_boxes(img) if k == kind]
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    assert x0 == 0 and y1 == h and y0 > h / 2 and 0.15 * w < x1 < 0.5 * w
    assert not fov[y0:y1, x0:x1].any()
    if kind == "green-inset":
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        inset_green = (hsv[..., 0] > 40) & (hsv[..., 0] < 95) & (hsv[..., 1] > 90)
        assert not (fov & inset_green).any()
    assert (fov & (img.max(axis=2) < 10)).mean() < 0.001
    assert fov.mean() > 0.4  # most of the frame is still usable tissue


def test_patches_both_classes_masks_and_fov(seg_dir, patches):
    assert patches.counts["polyp"] > 10 and patches.counts["polyp"] == patches.counts["mucosa"]
    assert patches.images_used > 10
    out = patches.out_dir
    fovs = {}
    for rec in patches.patches:
        img = cv2.imread(str(out / rec.cls / rec.file))
        mask = cv2.imread(str(out / "_masks" / rec.cls / rec.file), cv2.IMREAD_UNCHANGED)
        assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
        if rec.cls == "polyp":
            assert (mask > 127).mean() >= MIN_FRACTION, rec
        else:
            assert not mask.any(), rec
        src = seg_dir / "images" / f"{rec.source}.jpg"
        if rec.source not in fovs:
            fovs[rec.source] = (read_rgb(src), fov_mask(read_rgb(src)), read_mask(seg_dir / "masks" / f"{rec.source}.jpg"))
        full, fov, polyp = fovs[rec.source]
        win = np.s_[rec.y:rec.y + rec.side, rec.x:rec.x + rec.side]
        assert fov[win].all(), rec
        if rec.cls == "polyp":
            assert polyp[win].mean() >= MIN_FRACTION
        else:
            assert not polyp[win].any()
        # The written patch is the recorded window of the source image.
        expect = cv2.resize(full[win], (64, 64), interpolation=cv2.INTER_AREA)
        assert np.array_equal(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), expect)
    assert (out / PATCH_INDEX_NAME).read_text().count("\n") == len(patches.patches) + 1


def test_patches_are_discoverable_with_masks(patches):
    index = discover(patches.out_dir)
    assert index.class_names == ["mucosa", "polyp"]
    assert index.counts() == [patches.counts["mucosa"], patches.counts["polyp"]]
    assert not index.skipped
    assert all(mask_path(index.root, rel) is not None for rel, _ in index.items)


def test_patches_deterministic(seg_dir, tmp_path):
    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}
    a = build_patch_dataset(seg_dir, tmp_path / "a", patch_size=32, seed=5, limit=6)
    b = build_patch_dataset(seg_dir, tmp_path / "b", patch_size=32, seed=5, limit=6)
    c = build_patch_dataset(seg_dir, tmp_path / "c", patch_size=32, seed=6, limit=6)
    assert files(tmp_path / "a") == files(tmp_path / "b") and a.patches == b.patches
    assert a.patches != c.patches
    # Rebuilding into a used folder replaces the earlier patches instead of mixing them in.
    build_patch_dataset(seg_dir, tmp_path / "a", patch_size=32, seed=6, limit=6)
    assert files(tmp_path / "a") == files(tmp_path / "c")
    (tmp_path / "c" / "polyp" / "mine.png").write_bytes(b"x")
    with pytest.raises(KvasirError, match="pick an empty --out"):
        build_patch_dataset(seg_dir, tmp_path / "c", patch_size=32, seed=6, limit=6)


def test_patch_size_below_min_image_side_refused(tmp_path, capsys):
    """Patches smaller than the discovery threshold would all be skipped when training on them."""
    with pytest.raises(KvasirError, match=rf"--patch-size >= {MIN_IMAGE_SIDE}.*got {MIN_IMAGE_SIDE - 1}"):
        build_patch_dataset(tmp_path, tmp_path / "o", patch_size=MIN_IMAGE_SIDE - 1)
    assert main(["patches", "--seg-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--patch-size", "8"]) == 2
    assert f"--patch-size >= {MIN_IMAGE_SIDE}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _seg_copy(seg_dir, root, n=3):
    """A tiny Kvasir-SEG folder with n real pairs (copied, never modifying the shared data)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for s in load_kvasir_seg(seg_dir)[:n]:
        (root / "images" / s.image.name).write_bytes(s.image.read_bytes())
        (root / "masks" / s.mask.name).write_bytes(s.mask.read_bytes())
    return root


def test_missing_masks_dir_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "seg" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"masks is missing"):
        load_kvasir_seg(tmp_path / "seg")
    assert main(["patches", "--seg-dir", str(tmp_path / "seg"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "masks" in err and err.count("\n") == 1
    assert main(["patches", "--seg-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unmatched_names_are_skipped_with_a_count(seg_dir, tmp_path, caplog):
    root = _seg_copy(seg_dir, tmp_path / "seg")
    first = sorted((root / "masks").iterdir())[0]
    first.rename(first.with_name("renamed.jpg"))
    with caplog.at_level(logging.WARNING, logger="kvasir_tf.data.kvasir_seg"):
        samples = load_kvasir_seg(root)
    assert len(samples) == 2 and first.stem not in [s.name for s in samples]
    assert "1 image(s) without a mask and 1 mask(s) without an image" in caplog.text
    for m in (root / "masks").iterdir():
        m.rename(m.with_name("x" + m.name))
    with pytest.raises(DataError, match="no image in images/ has a mask of the same name"):
        load_kvasir_seg(root)


def test_official_archive_folder_and_mask_threshold(seg_dir, tmp_path):
    root = _seg_copy(seg_dir, tmp_path / "dl" / "Kvasir-SEG", n=1)
    assert len(load_kvasir_seg(tmp_path / "dl")) == 1
    m = np.zeros((4, 4), np.uint8)
    m[0, 0], m[0, 1], m[0, 2] = 127, 128, 250
    cv2.imwrite(str(tmp_path / "m.png"), m)
    got = read_mask(tmp_path / "m.png")
    assert got[0, :3].tolist() == [False, True, True] and got.sum() == 2
    assert root.is_dir()
