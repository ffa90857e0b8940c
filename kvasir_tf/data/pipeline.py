"""tf.data input pipeline: decode every image once into a uint8 cache, then augment and batch.

The first pass decodes (JPEG/PNG), optionally masks overlays, centre-crops and resizes
with :func:`kvasir_tf.data.imageio.resize` in a thread pool (OpenCV releases the GIL),
into one uint8 array [N, S, S, 3]. With ``cache_dir`` that array is also written to
``cache_dir/<key>.npy`` (key = file list + sizes + mtimes + image size + overlay flag),
so a rerun maps it back instead of decoding. Epochs only index that array: they never
touch the image files again. Output: float32 raw pixels 0..255 (the model applies
:func:`kvasir_tf.preprocessing.preprocess` itself) and int32 labels.
"""
import hashlib
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kvasir_tf.data import imageio
from kvasir_tf.data.overlays import mask_overlays as _mask_overlays
from kvasir_tf.errors import DataError

import tensorflow as tf

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# Training-only augmentation (as in the paper: rotation, flip, colour jitter).
# Full-circle rotation: the endoscope's roll is arbitrary and its field of view round;
# the corners it uncovers are filled with black, like the frame's own margins.
MAX_ROTATION_DEG = 180.0
BRIGHTNESS_DELTA = 0.1 * 255.0     # additive, in pixel units
CONTRAST_RANGE = (0.8, 1.2)        # scale about the per-image mean
SATURATION_RANGE = (0.8, 1.2)      # blend with the grey image
SHUFFLE_BUFFER = 10_000            # indices only, so cheap


def _decode_one(path, image_size, mask_overlays):
    img = imageio.read_rgb(path)
    # Discovery skips these from the header already; this catches TIFFs (size not read from the
    # header), discover(validate=False) and manifests written before the rule.
    imageio.check_min_side(path, (img.shape[1], img.shape[0]))
    if mask_overlays:
        img = _mask_overlays(img)
    return imageio.resize(img, image_size)


def _workers() -> int:
    return max(2, min(16, (os.cpu_count() or 2) * 2))


def _decode_all(paths, image_size, mask_overlays, progress=False):
    """Decode in parallel; returns (uint8 array of the good ones, kept indices, failures)."""
    out = np.empty((len(paths), image_size, image_size, 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    failures = []

    def work(i):
        try:
            out[i] = _decode_one(paths[i], image_size, mask_overlays)
            ok[i] = True
        except DataError as exc:
            failures.append((str(paths[i]), str(exc)))
        except Exception as exc:  # noqa: BLE001  (a bad file must never stop the run)
            failures.append((str(paths[i]), f"{paths[i]}: {type(exc).__name__}: {exc}"))

    with ThreadPoolExecutor(_workers()) as pool:
        it = pool.map(work, range(len(paths)))
        if progress:
            from tqdm import tqdm
            it = tqdm(it, total=len(paths), desc="decoding", unit="img", leave=False)
        for _ in it:
            pass
    kept = np.flatnonzero(ok)
    failures.sort()  # threads finish in any order; report (and name) the first file by path
    if failures:
        log.warning("dropped %d of %d image(s) that failed to decode or are too small, e.g. %s",
                    len(failures), len(paths), failures[0][1])
    images = out if len(kept) == len(paths) else out[kept]
    return images, kept, failures


def cache_key(paths, image_size, mask_overlays) -> str:
    """Hash of everything that determines the cached pixels."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, int(image_size), bool(mask_overlays)]).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def build_cache(paths, image_size, *, mask_overlays=False, cache_dir=None, progress=False):
    """(images uint8 [M,S,S,3], kept indices into ``paths``, failures); M <= len(paths).

    Files that fail to decode are dropped (logged with a count). With ``cache_dir`` the
    result is stored/reused under a content key.
    """
    paths = [str(p) for p in paths]
    if cache_dir is None:
        return _decode_all(paths, image_size, mask_overlays, progress)
    cache_dir = Path(cache_dir)
    try:
        key = cache_key(paths, image_size, mask_overlays)
    except OSError as exc:
        raise DataError(f"{exc.filename}: cannot stat image ({exc.strerror}); re-run discovery "
                        "or restore the file") from None
    npy, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            images = np.load(npy, mmap_mode="r")
            kept = np.asarray(info["kept"], dtype=np.int64)
            if images.shape == (len(kept), image_size, image_size, 3):
                log.info("reusing decoded-image cache %s (%d images)", npy, len(kept))
                return images, kept, [tuple(f) for f in info["failures"]]
        except (OSError, ValueError, KeyError):
            pass
        log.warning("ignoring unreadable cache %s; rebuilding it", npy)
    images, kept, failures = _decode_all(paths, image_size, mask_overlays, progress)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f"{key}.tmp.npy"
        np.save(tmp, images)
        tmp.replace(npy)
        meta.write_text(json.dumps({"kept": kept.tolist(), "failures": failures,
                                    "image_size": image_size, "mask_overlays": mask_overlays}))
    except OSError as exc:
        log.warning("could not write cache in %s (%s); continuing in memory", cache_dir, exc)
    return images, kept, failures


def load_images(paths, image_size, mask_overlays=False) -> np.ndarray:
    """Decode+resize files for evaluation/calibration: uint8 [N, S, S, 3], same code path.

    Unlike training, nothing may be dropped here (labels must line up), so a bad file
    raises DataError naming it.
    """
    images, kept, failures = _decode_all([str(p) for p in paths], image_size, mask_overlays)
    if failures:
        raise DataError(f"{failures[0][1]} ({len(failures)} of {len(paths)} files failed)")
    return images


def _rotation_transforms(angles, size):
    """Projective transforms (output -> input) rotating about the image centre."""
    c, s = tf.cos(angles), tf.sin(angles)
    d = tf.cast(size - 1, tf.float32)
    x_off = (d - (c * d - s * d)) / 2.0
    y_off = (d - (s * d + c * d)) / 2.0
    z = tf.zeros_like(angles)
    return tf.stack([c, -s, x_off, s, c, y_off, z, z], axis=1)


def augment_batch(images, seed):
    """Random rotation, flips and colour jitter per image, from a stateless ``seed`` [2].

    ``images``: float32 [B, S, S, 3] in 0..255; output stays in 0..255.
    """
    b = tf.shape(images)[0]
    size = tf.shape(images)[1]
    seeds = tf.random.experimental.stateless_split(seed, 7)
    u = lambda i, lo, hi: tf.random.stateless_uniform([b], seeds[i], lo, hi)  # noqa: E731
    angles = u(0, -1.0, 1.0) * (MAX_ROTATION_DEG * math.pi / 180.0)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=_rotation_transforms(angles, size),
        output_shape=tf.stack([size, size]), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")
    flip_lr = u(1, 0.0, 1.0)[:, None, None, None] < 0.5
    flip_ud = u(2, 0.0, 1.0)[:, None, None, None] < 0.5
    images = tf.where(flip_lr, tf.reverse(images, [2]), images)
    images = tf.where(flip_ud, tf.reverse(images, [1]), images)
    images = images + u(3, -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)[:, None, None, None]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * u(4, *CONTRAST_RANGE)[:, None, None, None] + mean
    grey = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - grey) * u(5, *SATURATION_RANGE)[:, None, None, None] + grey
    return tf.clip_by_value(images, 0.0, 255.0)


def make_dataset(split, subset, image_size, batch_size, *, training=None, augment=True,
                 mask_overlays=False, cache_dir=None, seed=0, drop_remainder=False,
                 progress=False) -> tf.data.Dataset:
    """Batches of (float32 [B,S,S,3] raw pixels 0..255, int32 [B] labels) for one subset.

    ``training`` (default: ``subset == "train"``) turns on per-epoch reshuffling and,
    with ``augment``, the random augmentation; val/test are fixed and unaugmented.
    The decode happens here, once; files that fail are dropped with a logged count.
    Every option past the fourth is keyword-only with a default: the parameters mirror
    tf.data's own knobs, and each caller sets one or two of them.
    """
    if training is None:
        training = subset == "train"
    items = split.subset(subset)
    if not items:
        raise DataError(f"subset '{subset}' of the split of {split.root} is empty; use more "
                        "images per class or other split fractions")
    paths = split.paths(subset)
    labels = split.labels(subset)
    images, kept, failures = build_cache(paths, int(image_size), mask_overlays=mask_overlays,
                                         cache_dir=cache_dir, progress=progress)
    labels = labels[kept]
    n = len(labels)
    if n == 0:
        raise DataError(f"none of the {len(paths)} '{subset}' images could be decoded, e.g. "
                        f"{failures[0][1]}")

    def gather(idx):
        idx = np.sort(idx) if isinstance(images, np.memmap) else idx  # sequential reads
        return np.asarray(images[idx]), labels[idx]

    def fetch(idx):
        x, y = tf.numpy_function(gather, [idx], (tf.uint8, tf.int32), stateful=False)
        x = tf.ensure_shape(x, [None, image_size, image_size, 3])
        return tf.cast(x, tf.float32), tf.ensure_shape(y, [None])

    ds = tf.data.Dataset.range(n)
    if training:
        ds = ds.shuffle(min(n, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(fetch)
    if training and augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda xy, s: (augment_batch(xy[0], s), xy[1]), num_parallel_calls=tf.data.AUTOTUNE)
    opts = tf.data.Options()
    opts.deterministic = True
    ds = ds.with_options(opts)
    return ds.prefetch(tf.data.AUTOTUNE)
