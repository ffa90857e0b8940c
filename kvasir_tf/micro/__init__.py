"""The microcontroller export: ``python -m kvasir_tf.micro RUN_DIR --out DIR --board nano33ble``.

From a trained run (or an int8 .tflite with its sidecar) it writes the int8 model with the pixel
map folded into the first convolution (:mod:`.fold`), checked bit for bit in the real TFLite Micro
interpreter against LiteRT's reference kernels with the smallest arena plus a margin
(:mod:`.tflm`), the firmware's generated sources (:mod:`.codegen`) and the board's flash/RAM
budget report (:mod:`.budgets`). ``microcontroller/`` holds the firmware that compiles them.
"""
from kvasir_tf.micro.export import export_micro  # noqa: F401
