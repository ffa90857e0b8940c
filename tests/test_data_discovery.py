"""discover(): layouts, class lists, and every bad input it must skip or report."""
import logging

import cv2
import numpy as np
import pytest

from kvasir_tf.data.classes import KVASIR_V2_CLASSES
from kvasir_tf.data.discovery import MASKS_DIRNAME, discover, mask_path
from kvasir_tf.data.imageio import MIN_IMAGE_SIDE
from kvasir_tf.errors import DataError
from tests.conftest import write_image


def test_canonical_classes_alphabetical():
    assert len(KVASIR_V2_CLASSES) == 8 and list(KVASIR_V2_CLASSES) == sorted(KVASIR_V2_CLASSES)


def test_official_layout_under_parent(tmp_path):
    inner = tmp_path / "kvasir-dataset-v2"
    for i, cls in enumerate(("polyps", "esophagitis")):
        for j in range(2):
            write_image(inner / cls / f"{j}.jpg", seed=i * 10 + j)
    ix = discover(tmp_path)  # the parent of kvasir-dataset-v2/ is accepted
    assert ix.root == inner and ix.layout == "kvasir-v2"
    assert ix.class_names == list(KVASIR_V2_CLASSES)
    assert ix.items == [("esophagitis/0.jpg", 2), ("esophagitis/1.jpg", 2),
                        ("polyps/0.jpg", 6), ("polyps/1.jpg", 6)]
    assert ix.counts() == [0, 0, 2, 0, 0, 0, 2, 0]
    assert any("6 of the 8" in w for w in ix.warnings)


def test_other_layout_derives_sorted_classes(make_dataset_dir, caplog):
    root = make_dataset_dir({"zebra": 2, "apple": 3})
    write_image(root / MASKS_DIRNAME / "apple" / "img000.png")   # masks folder is not a class
    write_image(root / ".cache" / "x.jpg")
    with caplog.at_level(logging.INFO, logger="kvasir_tf.data"):
        ix = discover(root)
    assert ix.layout == "class-folders" and ix.class_names == ["apple", "zebra"]
    assert ix.counts() == [3, 2]
    assert "classes derived from folder names: apple, zebra" in caplog.text
    assert mask_path(root, "apple/img000.jpg") == root / MASKS_DIRNAME / "apple" / "img000.png"
    assert mask_path(root, "apple/img001.jpg") is None


def test_bad_files_skipped_with_reasons(make_dataset_dir, caplog):
    root = make_dataset_dir({"a": 3, "b": 3})
    (root / "a" / "zero.jpg").write_bytes(b"")
    good = (root / "a" / "img000.jpg").read_bytes()
    (root / "a" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (root / "b" / "readme.txt").write_text("hello")
    (root / "b" / "fake.png").write_text("not a png")
    write_image(root / "b" / "real.png", seed=5)
    rgba = np.zeros((20, 25, 4), np.uint8)
    cv2.imwrite(str(root / "b" / "rgba.png"), rgba)
    write_image(root / "b" / "grey.jpg", channels=1)
    with caplog.at_level(logging.WARNING, logger="kvasir_tf.data"):
        ix = discover(root)
    reasons = dict(ix.skipped)
    assert set(reasons) == {"a/zero.jpg", "a/cut.jpg", "b/readme.txt", "b/fake.png"}
    assert "empty file (0 bytes)" in reasons["a/zero.jpg"]
    assert "truncated JPEG" in reasons["a/cut.jpg"]
    assert "not an image file (extension .txt)" in reasons["b/readme.txt"]
    assert "not an image (unknown file signature)" in reasons["b/fake.png"]
    assert ix.counts() == [3, 6]   # PNG, RGBA and greyscale images are kept
    assert "skipped 4 unreadable or non-image file(s)" in caplog.text


def test_huge_image_skipped(make_dataset_dir):
    root = make_dataset_dir({"a": 2, "b": 2})
    cv2.imwrite(str(root / "a" / "huge.jpg"), np.zeros((8000, 8000), np.uint8))
    ix = discover(root)
    assert ix.counts() == [2, 2]
    assert "image too large (8000x8000" in dict(ix.skipped)["a/huge.jpg"]


def test_too_small_images_skipped_with_reason_and_count(make_dataset_dir, caplog):
    root = make_dataset_dir({"a": 3, "b": 3})
    before = discover(root).items
    cv2.imwrite(str(root / "a" / "dot.png"), np.full((1, 1, 3), 200, np.uint8))
    cv2.imwrite(str(root / "b" / "sliver.jpg"), np.full((12, 4000, 3), 90, np.uint8))
    cv2.imwrite(str(root / "b" / "tall.bmp"), np.zeros((4000, 15, 3), np.uint8))  # BMP header read too
    side = MIN_IMAGE_SIDE
    cv2.imwrite(str(root / "a" / "edge.png"), np.full((side, 3 * side, 3), 50, np.uint8))  # kept
    with caplog.at_level(logging.WARNING, logger="kvasir_tf.data"):
        ix = discover(root)
    reasons = dict(ix.skipped)
    assert set(reasons) == {"a/dot.png", "b/sliver.jpg", "b/tall.bmp"}
    assert reasons["a/dot.png"].startswith("image too small (1x1: shorter side 1 px < 16 px")
    assert reasons["b/sliver.jpg"].startswith("image too small (4000x12: shorter side 12 px")
    assert reasons["b/tall.bmp"].startswith("image too small (15x4000: shorter side 15 px")
    assert all(r.endswith("remove it from the class folder") for r in reasons.values())
    assert f"skipped 3 image(s) smaller than {side} px on the shorter side, e.g. a/dot.png" in caplog.text
    assert "unreadable or non-image" not in caplog.text
    assert ix.items == sorted(before + [("a/edge.png", 0)])   # normal images unaffected


def test_empty_class_folder_dropped_with_warning(make_dataset_dir):
    root = make_dataset_dir({"a": 2, "b": 2})
    (root / "empty").mkdir()
    ix = discover(root)
    assert ix.class_names == ["a", "b"]
    assert any("empty: class folder has no usable image: class dropped" in w for w in ix.warnings)


def test_empty_canonical_folder_keeps_class_order(tmp_path):
    write_image(tmp_path / "polyps" / "x.jpg")
    (tmp_path / "esophagitis").mkdir()
    ix = discover(tmp_path)
    assert ix.class_names == list(KVASIR_V2_CLASSES)
    assert any("esophagitis: class folder has no usable image: kept" in w for w in ix.warnings)


@pytest.mark.parametrize("mode,expected_classes", [
    ("use", list(KVASIR_V2_CLASSES) + ["my-polyps"]),
    ("skip", list(KVASIR_V2_CLASSES)),
])
def test_unknown_class_folder(tmp_path, caplog, mode, expected_classes):
    for cls in ("polyps", "normal-cecum", "my-polyps"):
        write_image(tmp_path / cls / "x.jpg")
    with caplog.at_level(logging.WARNING, logger="kvasir_tf.data"):
        ix = discover(tmp_path, unknown_classes=mode)
    assert ix.layout == "kvasir-v2" and ix.class_names == expected_classes
    assert "not among the Kvasir v2 classes: my-polyps" in caplog.text
    assert ("my-polyps/x.jpg", 8) in ix.items if mode == "use" else len(ix.items) == 2


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"nowhere does not exist.*make demo.*kvasir-data download"):
        discover(tmp_path / "nowhere")


def test_empty_directory(tmp_path):
    with pytest.raises(DataError, match=r"no class folders in .*make demo"):
        discover(tmp_path)


def test_directory_with_only_bad_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="no usable images in"):
        discover(tmp_path)


def test_bad_flag(tmp_path):
    with pytest.raises(DataError, match="unknown_classes must be"):
        discover(tmp_path, unknown_classes="maybe")


def test_real_partial_kvasir_v2(shared_data):
    ix = discover(shared_data / "kvasir-v2-partial")
    assert ix.layout == "kvasir-v2" and ix.skipped == []
    names = ix.class_names
    counts = dict(zip(names, ix.counts()))
    assert counts["normal-cecum"] == 250 and counts["dyed-lifted-polyps"] == 1
    assert counts["normal-z-line"] == 1 and sum(counts.values()) == 252
