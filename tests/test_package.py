"""`import kvasir_tf` selects Keras 2 for tf.keras, and refuses a TensorFlow already bound to Keras 3."""
import os
import subprocess
import sys


def _python(code):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def test_import_selects_tf_keras_even_after_tensorflow():
    out = _python("import tensorflow as tf\nimport kvasir_tf\nprint(tf.keras.__name__)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1].startswith("tf_keras")


def test_keras3_already_bound_is_a_clear_error():
    out = _python("import tensorflow as tf\ntf.keras.layers\nimport kvasir_tf")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: kvasir_tf needs Keras 2 (tf_keras)")
    assert "TF_USE_LEGACY_KERAS=1" in last
