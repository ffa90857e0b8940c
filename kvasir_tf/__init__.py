"""kvasir_tf: saliency-guided PACT quantization of MobileNetV2 for Kvasir endoscopy images.

TF-MOT only works with Keras 2 (``tf_keras``), so importing this package selects it
for ``tf.keras`` before TensorFlow is imported anywhere.
"""
import os
import sys

__version__ = "0.1.0"

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _check_keras_backend():
    """Fail early if TensorFlow already bound ``tf.keras`` to Keras 3."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return  # tf.keras will resolve to tf_keras on first use
    keras_mod = getattr(tf, "keras", None)
    name = getattr(keras_mod, "__name__", "") or ""
    version = str(getattr(keras_mod, "__version__", ""))
    if name.startswith("keras") and not name.startswith("keras.src.legacy") and version.startswith("3"):
        raise ImportError(
            "kvasir_tf needs Keras 2 (tf_keras) for TF-MOT, but TensorFlow was already imported "
            "with Keras 3 as tf.keras. Import kvasir_tf before tensorflow, or set "
            "TF_USE_LEGACY_KERAS=1 in the environment before starting Python."
        )


_check_keras_backend()
