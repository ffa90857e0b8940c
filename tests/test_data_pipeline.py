"""make_dataset/load_images on real images: shapes, decode-once cache, train-only augmentation."""
import logging
import math
import os
import shutil
from collections import Counter

import numpy as np
import pytest

from kvasir_tf.data import imageio, pipeline
from kvasir_tf.data.discovery import discover
from kvasir_tf.data.split import stratified_split
from tests.conftest import write_image

import tensorflow as tf  # noqa: E402

S = 64


@pytest.fixture
def real_split(real_subset):
    return stratified_split(discover(real_subset), seed=1)


def _epoch(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_real_images_shapes_labels_and_decode_path(real_split):
    ds = pipeline.make_dataset(real_split, "train", S, 8)
    assert ds.element_spec[0].shape.as_list() == [None, S, S, 3]
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.int32
    x, y = _epoch(ds)
    assert x.shape == (32, S, S, 3) and x.min() >= 0 and x.max() <= 255 and x.max() > 200
    assert Counter(y.tolist()) == Counter(real_split.labels("train").tolist())
    # Evaluation path: same decode/resize code as the cache, in split order.
    xv, yv = _epoch(pipeline.make_dataset(real_split, "val", S, 3))
    ref = pipeline.load_images(real_split.paths("val"), S)
    assert ref.dtype == np.uint8 and np.array_equal(xv, ref.astype(np.float32))
    assert np.array_equal(yv, real_split.labels("val"))
    one = imageio.resize(imageio.read_rgb(real_split.paths("val")[0]), S)
    assert np.array_equal(ref[0], one)


def test_val_identical_across_epochs_train_augmented(real_split):
    dv = pipeline.make_dataset(real_split, "val", S, 4)
    a, b = _epoch(dv), _epoch(dv)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    dt = pipeline.make_dataset(real_split, "train", S, 32, seed=0)
    e1, e2 = _epoch(dt), _epoch(dt)
    assert not np.array_equal(e1[0], e2[0])          # new augmentation (and order) each epoch
    plain = pipeline.load_images(real_split.paths("train"), S).astype(np.float32)
    # Augmented images are not any of the decoded originals...
    assert min(np.abs(e1[0][0] - p).mean() for p in plain) > 1.0
    # ...while augment=False gives exactly the originals, shuffled.
    noaug = _epoch(pipeline.make_dataset(real_split, "train", S, 32, augment=False))[0]
    key = lambda a: sorted(float(v) for v in a.reshape(len(a), -1).sum(1))  # noqa: E731
    assert key(noaug) == key(plain)


def test_cached_epochs_never_touch_files(real_split, tmp_path, monkeypatch):
    ds = pipeline.make_dataset(real_split, "val", S, 4)
    first = _epoch(ds)
    os.rename(real_split.root, tmp_path / "gone")   # the images disappear after the decode
    monkeypatch.setattr(imageio, "read_rgb", lambda p: pytest.fail(f"re-read {p}"))
    again = _epoch(ds)
    assert np.array_equal(first[0], again[0])


def test_cache_dir_reused_and_invalidated(real_split, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    x1 = _epoch(pipeline.make_dataset(real_split, "test", S, 4, cache_dir=cache))[0]
    assert len(list(cache.glob("*.npy"))) == 1
    calls = []
    real_read = imageio.read_rgb
    monkeypatch.setattr(imageio, "read_rgb", lambda p: calls.append(p) or real_read(p))
    x2 = _epoch(pipeline.make_dataset(real_split, "test", S, 4, cache_dir=cache))[0]
    assert calls == [] and np.array_equal(x1, x2)     # rerun: no decode at all
    _epoch(pipeline.make_dataset(real_split, "test", S, 4, cache_dir=cache, mask_overlays=True))
    assert len(calls) == len(real_split.test)           # overlay flag is part of the key
    p = real_split.paths("test")[0]                     # a symlink into ../shared/data:
    target = p.resolve()                                # replace it with a local copy (new
    p.unlink()                                          # mtime) rather than touch the original
    shutil.copyfile(target, p)
    os.utime(p, ns=(1, 1))                              # changed file -> new cache
    _epoch(pipeline.make_dataset(real_split, "test", S, 4, cache_dir=cache))
    assert len(list(cache.glob("*.npy"))) == 3


def test_undecodable_file_dropped_with_count(make_dataset_dir, caplog):
    root = make_dataset_dir({"a": 5, "b": 5}, size=(32, 32))
    garbage = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad = root / "a" / "img002.jpg"   # passes the header check, fails the decode
    bad.write_bytes(b"\xff\xd8\xff\xe0" + garbage.replace(b"\xff\xd9", b"\0\0") + b"\xff\xd9")
    sp = stratified_split(discover(root), fractions=(0.6, 0.2, 0.2), seed=0)
    with caplog.at_level(logging.WARNING, logger="kvasir_tf.data"):
        x, y = _epoch(pipeline.make_dataset(sp, "train", 16, 4, training=False))
        xs, _ = _epoch(pipeline.make_dataset(sp, "val", 16, 4))
        xt, _ = _epoch(pipeline.make_dataset(sp, "test", 16, 4))
    n_total = len(x) + len(xs) + len(xt)
    assert n_total == 9                                 # the other 9 images all survive
    assert "dropped 1 of" in caplog.text and "img002.jpg" in caplog.text
    with pytest.raises(pipeline.DataError, match="img002.jpg: corrupt image"):
        pipeline.load_images([bad], 16)


def test_too_small_images_dropped_with_count(make_dataset_dir, caplog):
    """Discovery cannot read a TIFF's size from its header: the decode applies the same rule."""
    import cv2
    root = make_dataset_dir({"a": 4, "b": 4}, size=(32, 32))
    cv2.imwrite(str(root / "a" / "dot.tif"), np.full((1, 1, 3), 200, np.uint8))
    cv2.imwrite(str(root / "b" / "sliver.png"), np.full((12, 4000, 3), 90, np.uint8))
    for validate, n_small in ((True, 1), (False, 2)):   # discover(validate=False): both reach here
        ix = discover(root, validate=validate)
        assert len(ix.items) == 8 + n_small
        sp = stratified_split(ix, fractions=(1.0, 0.0, 0.0))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kvasir_tf.data"):
            x, y = _epoch(pipeline.make_dataset(sp, "train", 16, 4, training=False))
        assert len(x) == 8 and Counter(y.tolist()) == {0: 4, 1: 4}   # the normal images all train
        assert f"dropped {n_small} of {8 + n_small} image(s)" in caplog.text
        assert "dot.tif: image too small (1x1: shorter side 1 px < 16 px" in caplog.text
    with pytest.raises(pipeline.DataError, match=r"sliver\.png: image too small \(4000x12.*\(1 of 2 files"):
        pipeline.load_images([root / "a" / "img000.jpg", root / "b" / "sliver.png"], 16)


def test_real_partial_kvasir_v2(shared_data):
    ix = discover(shared_data / "kvasir-v2-partial")
    sp = stratified_split(ix, small_classes="train")
    x, y = _epoch(pipeline.make_dataset(sp, "val", 32, 16))
    assert x.shape == (25, 32, 32, 3) and set(y.tolist()) == {3}   # normal-cecum
    xt, yt = _epoch(pipeline.make_dataset(sp, "train", 32, 64, drop_remainder=True))
    assert xt.shape == (192, 32, 32, 3)                              # 202 -> 3 full batches
    assert {0, 3, 5} >= set(yt.tolist())


def test_rotation_transform_matches_rot90():
    img = np.random.default_rng(0).uniform(0, 255, (1, 9, 9, 3)).astype(np.float32)
    t = pipeline._rotation_transforms(tf.constant([math.pi / 2]), tf.constant(9))
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=img, transforms=t, output_shape=[9, 9], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT").numpy()
    rots = [np.rot90(img[0], k) for k in (1, 3)]
    assert min(np.abs(out[0] - r).max() for r in rots) < 1e-3


def test_augment_batch_deterministic_in_range():
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)), tf.float32)
    a = pipeline.augment_batch(x, tf.constant([1, 2], tf.int64)).numpy()
    b = pipeline.augment_batch(x, tf.constant([1, 2], tf.int64)).numpy()
    c = pipeline.augment_batch(x, tf.constant([1, 3], tf.int64)).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255
