"""How hard is the synthetic demo dataset? Train a tiny MobileNetV2 from scratch and print accuracy.

The demo data must be learnable but not trivial: re-run this after changing the renderer in
``kvasir_tf/data/synthetic.py``; a sound result is well above chance (12.5 %) and well below 100 %.

    python tools/synthetic_learnability.py --per-class 60 --px 64 --epochs 40

Images go through JPEG like the files ``generate`` writes. BatchNorm momentum is lowered to
0.9: with MobileNetV2's 0.999 and only a few hundred steps from scratch, the moving
statistics lag the weights and validation accuracy sits at chance whatever the data.
"""
import argparse
import time

import cv2
import numpy as np

from kvasir_tf.data.classes import KVASIR_V2_CLASSES
from kvasir_tf.data.synthetic import DEMO_SIZE, JPEG_QUALITY, image_rng
from kvasir_tf.data.synthetic_render import render
from kvasir_tf.preprocessing import preprocess


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--px", type=int, default=64, help="model input size")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    import tensorflow as tf
    from sklearn.metrics import confusion_matrix
    tf.random.set_seed(a.seed)
    t0 = time.perf_counter()
    x, y = [], []
    for label, name in enumerate(KVASIR_V2_CLASSES):
        for i in range(a.per_class):
            rgb, _ = render(name, DEMO_SIZE, image_rng(a.seed, name, i))
            _, jpg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            rgb = cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]
            x.append(cv2.resize(rgb, (a.px, a.px), interpolation=cv2.INTER_AREA))
            y.append(label)
    x, y = np.array(x, np.float32), np.array(y)
    print(f"rendered {len(x)} images in {time.perf_counter() - t0:.1f}s")
    idx = np.random.default_rng(1).permutation(len(x))
    val, train = idx[: len(x) // 5], idx[len(x) // 5:]
    base = tf.keras.applications.MobileNetV2(input_shape=(a.px, a.px, 3), alpha=0.35, weights=None,
                                             classes=len(KVASIR_V2_CLASSES))
    for layer in base.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.9
    inp = tf.keras.Input((a.px, a.px, 3))
    model = tf.keras.Model(inp, base(preprocess(inp)))
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    flip = lambda img, lab: (tf.image.random_flip_up_down(tf.image.random_flip_left_right(img)), lab)  # noqa: E731
    ds = tf.data.Dataset.from_tensor_slices((x[train], y[train])).shuffle(2048, seed=0).batch(32).map(flip)
    t0 = time.perf_counter()
    hist = model.fit(ds, validation_data=(x[val], y[val]), epochs=a.epochs, verbose=0)
    accs = hist.history["val_accuracy"]
    print(f"trained {a.epochs} epochs on {len(train)} images at {a.px}px in {time.perf_counter() - t0:.0f}s")
    print(f"val accuracy: last {accs[-1]:.3f}, mean of last 5 {np.mean(accs[-5:]):.3f}, best {max(accs):.3f} "
          f"(chance {1 / len(KVASIR_V2_CLASSES):.3f}); train accuracy {hist.history['accuracy'][-1]:.3f}")
    pred = model.predict(x[val], verbose=0).argmax(1)
    print("confusion (rows true, cols predicted, order:", ", ".join(KVASIR_V2_CLASSES) + ")")
    print(confusion_matrix(y[val], pred, labels=range(len(KVASIR_V2_CLASSES))))


if __name__ == "__main__":
    main()
