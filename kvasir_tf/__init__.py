"""kvasir_tf: saliency-guided PACT quantization of MobileNetV2 for Kvasir endoscopy images.

TF-MOT only works with Keras 2 (``tf_keras``), so importing this package selects it
for ``tf.keras`` before TensorFlow is imported anywhere.
"""
import contextlib
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"

os.environ["TF_USE_LEGACY_KERAS"] = "1"

# TensorFlow's C++ start-up banners (oneDNN, cudart, CPU features, cuInit on a machine without a
# GPU) are noise to a user. Most are written before absl's logging is initialised, where
# TF_CPP_MIN_LOG_LEVEL does not reach them, so file descriptor 2 is silenced while TensorFlow's
# module loads (lazily, on first import). The command line is looked at here, before that:
# ``--verbose`` on any CLI shows them.
VERBOSE_FLAG = "--verbose"
_VERBOSE = VERBOSE_FLAG in sys.argv[1:]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _VERBOSE else "3")


@contextlib.contextmanager
def _fds_silenced(fds=(2,)):
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    saved = [os.dup(fd) for fd in fds]
    for fd in fds:
        os.dup2(null, fd)
    try:
        yield
    finally:
        for fd, old in zip(fds, saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)


def native_output_silenced():
    """Silence C++ output (file descriptors 1 and 2) for a block, unless ``--verbose``: e.g. the
    TFLite calibrator prints ``fully_quantize: ...`` lines straight to the terminal."""
    return contextlib.nullcontext() if _VERBOSE else _fds_silenced((1, 2))


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Loads the ``tensorflow`` module with stderr silenced; every other import is untouched."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def quiet_exec(module):
                with _fds_silenced((2,)):
                    exec_module(module)
            spec.loader.exec_module = quiet_exec
        return spec


if not _VERBOSE and "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())


def add_verbose_flag(parser):
    """The shared ``--verbose`` flag (acted on at import time, see above)."""
    parser.add_argument(VERBOSE_FLAG, action="store_true",
                        help="show TensorFlow's start-up and runtime logs (hidden by default)")


def quiet_python_logs():
    """Hide TensorFlow's and absl's Python-side warnings unless --verbose."""
    if not _VERBOSE:
        import logging
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)


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
