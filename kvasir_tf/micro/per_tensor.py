"""Per-tensor weights for an int8 graph that has per-channel ones (what QAT gives): one scale per
weight tensor instead of one per output channel.

Each channel's int8 weights are requantized to the tensor's largest channel scale
(``w' = round(w * s_c / max(s))``) and the int32 bias to the new ``input scale * weight scale``.
It saves the per-channel scales and zero points (12 bytes per channel on the weights and again on
the bias) in flash, and TFLM's per-channel multiplier/shift arrays (8 bytes per channel) in the
arena; channels with small weights lose precision, so :mod:`kvasir_tf.micro` reports the accuracy
both ways. ``ops`` limits it to some op types (depthwise convs suffer most).
"""
from __future__ import annotations

import numpy as np

from kvasir_tf.errors import KvasirError
from kvasir_tf.micro import fold

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _set_int(model, tensor, values, dtype):
    model.buffers[tensor.buffer].data = np.frombuffer(np.asarray(values).astype(dtype).tobytes(), np.uint8)


def to_per_tensor(content: bytes, ops=WEIGHTED_OPS) -> tuple[bytes, dict]:
    """The graph with per-tensor weights on ``ops``; how many tensors and channels changed."""
    model = fold.read_model(content)
    g = model.subgraphs[0]
    names = fold.op_names(model)
    tensors = channels = 0
    for name, op in zip(names, g.operators):
        if name not in ops or len(op.inputs) < 2:
            continue
        w_t = g.tensors[op.inputs[1]]
        q = w_t.quantization
        if q is None or q.scale is None or len(q.scale) <= 1:
            continue
        dim = int(q.quantizedDimension)
        scales = np.asarray(q.scale, np.float64)
        shape = [1] * len(w_t.shape)
        shape[dim] = len(scales)
        w = np.frombuffer(bytes(np.asarray(model.buffers[w_t.buffer].data, np.uint8)), np.int8).reshape(w_t.shape)
        s = float(scales.max())
        w_new = np.clip(np.round(w.astype(np.float64) * scales.reshape(shape) / s), -127, 127)
        _set_int(model, w_t, w_new, np.int8)
        q.scale = np.asarray([s], np.float32)
        q.zeroPoint = np.zeros(1, np.int64)
        q.quantizedDimension = 0
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b_t = g.tensors[op.inputs[2]]
            in_scale = float(g.tensors[op.inputs[0]].quantization.scale[0])
            b = np.frombuffer(bytes(np.asarray(model.buffers[b_t.buffer].data, np.uint8)), np.int32)
            b_new = np.round(b.astype(np.float64) * (in_scale * scales) / (in_scale * s))
            if np.abs(b_new).max(initial=0) >= 2 ** 31:
                raise KvasirError(f"a {name} bias does not fit int32 per tensor; export per-channel")
            _set_int(model, b_t, b_new, "<i4")
            b_t.quantization.scale = np.asarray([np.float32(in_scale) * np.float32(s)], np.float32)
            b_t.quantization.zeroPoint = np.zeros(1, np.int64)
            b_t.quantization.quantizedDimension = 0
        tensors += 1
        channels += len(scales)
    return fold.write_model(model), {"per_tensor_ops": list(ops), "tensors": tensors, "channels": channels}
