"""Kvasir data layer: discovery, split manifest, decode-once tf.data pipeline.

Submodules are imported on demand so that ``import kvasir_tf.data`` stays cheap
(TensorFlow is only loaded by :mod:`kvasir_tf.data.pipeline`).
"""

from kvasir_tf.data.classes import KVASIR_V2_CLASSES  # noqa: F401
