"""The embedded demo dataset: deterministic, Kvasir v2 layout, masks, and real class signal."""
import json

import cv2
import numpy as np
import pytest

from kvasir_tf.data.classes import KVASIR_V2_CLASSES
from kvasir_tf.data.discovery import MASKS_DIRNAME, discover, mask_path
from kvasir_tf.data.synthetic import (STAMP_NAME, image_rng, ensure_demo_data, generate, image_name,
                                      main, render)

PER_CLASS = 3
SIZE = 64
# Classes whose defining structure is always drawn, so their masks must be non-empty.
FOCAL = ("polyps", "dyed-lifted-polyps", "dyed-resection-margins", "esophagitis", "normal-z-line",
         "normal-pylorus", "normal-cecum")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "a", per_class=PER_CLASS, size=SIZE, seed=3)


def _all_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files_and_other_seed_differs(demo, tmp_path):
    again = generate(tmp_path / "b", per_class=PER_CLASS, size=SIZE, seed=3)
    other = generate(tmp_path / "c", per_class=PER_CLASS, size=SIZE, seed=4)
    a, b, c = _all_bytes(demo), _all_bytes(again), _all_bytes(other)
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in images)


def test_layout_counts_and_masks(demo):
    index = discover(demo)
    assert index.layout == "kvasir-v2"
    assert index.class_names == list(KVASIR_V2_CLASSES)
    assert index.counts() == [PER_CLASS] * 8
    assert not index.skipped
    for rel, label in index.items:
        mp = mask_path(demo, rel)
        assert mp is not None and mp.parent.name == KVASIR_V2_CLASSES[label]
        img = cv2.imread(str(demo / rel))
        mask = cv2.imread(str(mp), cv2.IMREAD_UNCHANGED)
        assert img.shape == (SIZE, SIZE, 3) and mask.shape == (SIZE, SIZE)
        assert set(np.unique(mask)) <= {0, 255}
    assert sorted(p.stem for p in (demo / MASKS_DIRNAME / "polyps").iterdir()) == \
        [image_name(i) for i in range(PER_CLASS)]


def test_focal_masks_nonempty_and_inside_fov():
    for k in KVASIR_V2_CLASSES:
        for i in range(4):
            img, mask = render(k, 96, image_rng(0, k, i))
            if k in FOCAL:
                assert (mask > 0).sum() > 20, (k, i)
            # Circular/octagonal field of view: the four corners are black, the centre is lit.
            for y, x in ((0, 0), (0, 95), (95, 95)):
                assert img[y, x].max() < 20, (k, i, y, x)
            r, g, _ = img[95, 0].astype(int)  # lower left: black, or the green ScopeGuide inset
            assert max(r, g) < 20 or g > r + 60, (k, i, img[95, 0])
            assert img[40:56, 40:56].mean() > 30
            # No lesion pixel on the black border.
            assert (mask[img.max(axis=2) < 5] == 0).mean() > 0.99


def _features(img):
    """Colour only: a coarse 4x4x4 RGB histogram of the field of view."""
    px = img[img.max(axis=2) > 20] // 64
    return np.bincount(px[:, 0] * 16 + px[:, 1] * 4 + px[:, 2], minlength=64) / len(px)


def test_classes_are_separable_but_dyed_classes_are_blue():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score
    n, size = 20, 64
    X, y, blue = [], [], {}
    for label, k in enumerate(KVASIR_V2_CLASSES):
        ratios = []
        for i in range(n):
            img, mask = render(k, size, image_rng(11, k, i))
            X.append(_features(img))
            y.append(label)
            if mask.any():
                px = img[mask > 0].astype(np.float32)
                ratios.append(np.mean(px[:, 2] / (px[:, 0] + 1)))
        blue[k] = np.median(ratios)
    # Dye makes the lesion blue-dominant relative to the red, undyed polyps.
    assert blue["dyed-lifted-polyps"] > 1.25 * blue["polyps"]
    assert blue["dyed-resection-margins"] > 1.25 * blue["polyps"]
    forest = RandomForestClassifier(n_estimators=100, random_state=0)
    acc = cross_val_score(forest, np.array(X), np.array(y), cv=4).mean()
    assert acc > 0.3, acc  # chance is 1/8: identical rendering of the classes would fail this


def test_ensure_demo_data_generates_once_and_regenerates_when_incomplete(tmp_path):
    out = tmp_path / "demo"
    ensure_demo_data(out, per_class=2, size=48, seed=1, classes=("polyps", "esophagitis"))
    stamp = json.loads((out / STAMP_NAME).read_text())
    assert stamp["per_class"] == 2 and stamp["size"] == 48 and stamp["classes"] == ["polyps", "esophagitis"]
    victim = out / "polyps" / f"{image_name(0)}.jpg"
    mtime = victim.stat().st_mtime_ns
    ensure_demo_data(out, per_class=2, size=48, seed=1, classes=("polyps", "esophagitis"))
    assert victim.stat().st_mtime_ns == mtime  # complete: nothing rewritten
    original = victim.read_bytes()
    victim.unlink()
    ensure_demo_data(out, per_class=2, size=48, seed=1, classes=("polyps", "esophagitis"))
    assert victim.read_bytes() == original
    ensure_demo_data(out, per_class=3, size=48, seed=1, classes=("polyps", "esophagitis"))
    assert (out / "esophagitis" / f"{image_name(2)}.jpg").is_file()
    ensure_demo_data(out, per_class=1, size=48, seed=1, classes=("polyps", "esophagitis"))
    assert discover(out).counts() == [0, 0, 1, 0, 0, 0, 1, 0]  # the larger run's extras are gone
    assert len(list((out / MASKS_DIRNAME / "polyps").iterdir())) == 1


def test_cli_writes_dataset_and_rejects_bad_arguments(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "o"), "--per-class", "1", "--size", "40",
                 "--classes", "polyps", "normal-cecum"]) == 0
    assert "wrote 2 images" in capsys.readouterr().out
    assert (tmp_path / "o" / "normal-cecum" / f"{image_name(0)}.jpg").is_file()
    assert main(["--out", str(tmp_path / "p"), "--size", "8"]) == 2
    assert "--size >= 32" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "p"), "--classes", "tumour"]) == 2
    assert "tumour" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["--out", str(tmp_path / "file"), "--per-class", "1"]) == 2
    assert "not a directory" in capsys.readouterr().err
