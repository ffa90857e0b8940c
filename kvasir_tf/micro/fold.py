"""Fold the pixel map (``x = p / 127.5 - 1``: a MUL and an ADD at the head of a QAT int8 graph) into
the first CONV_2D, so the graph starts at the convolution.

The device still sends ``q = p - 128``. The folded input tensor says scale ``a = 1/127.5`` and zero
point 0, so its real value is ``r = a q = x - c`` with ``c = b + 128 a = 1/255`` for the map
``x = a p + b``; the conv's bias absorbs ``c * sum(W)`` and is requantized to the new input scale.
The weights are unchanged (the input scale plays the 1/127.5). Exact inside the image; a padded
tap now reads ``x = c`` instead of 0, an error of ``c * W`` on the border outputs only. Because the
tensor's zero point (0) is not the pixel map's (-128), the sidecar keeps the pixel map
(scale 1, zero point -128) and records the tensor's quantization separately.
"""
from __future__ import annotations

import numpy as np

from kvasir_tf.errors import KvasirError


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils
    return schema, flatbuffer_utils


def op_names(model) -> list:
    """Builtin op names of subgraph 0, in execution order."""
    schema, _ = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        out.append(names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM"))
    return out


def read_model(content: bytes):
    _, fu = _schema()
    return fu.read_model_from_bytearray(bytearray(content))


def write_model(model) -> bytes:
    _, fu = _schema()
    return bytes(fu.convert_object_to_bytearray(model))


def _const(model, graph, index) -> np.ndarray | None:
    """Dequantized value of a constant tensor, None when it is not constant."""
    t = graph.tensors[index]
    data = model.buffers[t.buffer].data
    if data is None or len(data) == 0:
        return None
    dtype = {9: np.int8, 0: np.float32, 2: np.int32}.get(t.type)
    if dtype is None:
        return None
    v = np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype).astype(np.float64)
    q = t.quantization
    if dtype != np.float32 and q is not None and q.scale is not None and len(q.scale):
        shape = [1] * len(t.shape)
        if len(q.scale) > 1:
            shape[q.quantizedDimension] = len(q.scale)
        v = v.reshape(t.shape)
        v = (v - np.asarray(q.zeroPoint, np.float64).reshape(shape)) * np.asarray(q.scale, np.float64).reshape(shape)
    return v.reshape(-1) if v.ndim <= 1 else v


def _consumers(graph, tensor) -> list:
    return [i for i, op in enumerate(graph.operators) if tensor in list(op.inputs)]


def find_pixel_map(model) -> tuple | None:
    """(mul op, add op, conv op, a, b) when the graph starts input -> MUL -> ADD -> CONV_2D."""
    g = model.subgraphs[0]
    names = op_names(model)
    inp = g.inputs[0]
    first = _consumers(g, inp)
    if len(first) != 1 or names[first[0]] != "MUL":
        return None
    mul = first[0]
    after_mul = _consumers(g, g.operators[mul].outputs[0])
    if len(after_mul) != 1 or names[after_mul[0]] != "ADD":
        return None
    add = after_mul[0]
    after_add = _consumers(g, g.operators[add].outputs[0])
    if len(after_add) != 1 or names[after_add[0]] != "CONV_2D":
        return None
    conv = after_add[0]
    a = [_const(model, g, t) for t in g.operators[mul].inputs if t != inp]
    b = [_const(model, g, t) for t in g.operators[add].inputs if t != g.operators[mul].outputs[0]]
    if len(a) != 1 or len(b) != 1 or a[0] is None or b[0] is None or a[0].size != 1 or b[0].size != 1:
        return None
    return mul, add, conv, float(a[0][0]), float(b[0][0])


def _remove_ops(graph, drop: set):
    """Delete operators and the tensors only they used; remap every tensor index."""
    keep_ops = [op for i, op in enumerate(graph.operators) if i not in drop]
    used = set(graph.inputs.tolist()) | set(graph.outputs.tolist())
    for op in keep_ops:
        used |= {int(t) for t in op.inputs if t >= 0} | {int(t) for t in op.outputs}
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    graph.tensors = [graph.tensors[i] for i in order]
    for op in keep_ops:
        op.inputs = np.asarray([remap[int(t)] if t >= 0 else -1 for t in op.inputs], np.int32)
        op.outputs = np.asarray([remap[int(t)] for t in op.outputs], np.int32)
    graph.inputs = np.asarray([remap[int(t)] for t in graph.inputs], np.int32)
    graph.outputs = np.asarray([remap[int(t)] for t in graph.outputs], np.int32)
    graph.operators = keep_ops
    return remap


def fold_pixel_map(content: bytes, border_offset: float | None = None) -> tuple[bytes, dict]:
    """The graph with MUL/ADD folded into the first conv, and what was done; unchanged (with
    ``folded: False``) when the graph already starts at CONV_2D (PTQ of a float model folds it)."""
    model = read_model(content)
    g = model.subgraphs[0]
    names = op_names(model)
    found = find_pixel_map(model)
    if found is None:
        if names and names[0] == "CONV_2D" and _consumers(g, g.inputs[0]) == [0]:
            return content, {"folded": False, "reason": "the graph already starts at CONV_2D"}
        raise KvasirError(f"the int8 graph starts with {names[:3]}, not [MUL, ADD, CONV_2D] or CONV_2D: "
                          "micro export expects a model built by kvasir_tf.model.build_mobilenetv2")
    mul, add, conv, a, b = found
    inp = g.tensors[g.inputs[0]]
    if not (inp.type == 9 and list(inp.quantization.scale) == [1.0] and list(inp.quantization.zeroPoint) == [-128]):
        raise KvasirError("folding needs the int8 input map q = p - 128 (scale 1, zero point -128); "
                          "convert with tools/convert.py --int8")
    op = g.operators[conv]
    w_t, bias_t = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
    w_real = _const(model, g, op.inputs[1])
    out_channels = w_t.shape[0]
    w_real = w_real.reshape(out_channels, -1)
    w_scale = np.asarray(w_t.quantization.scale, np.float64)
    w_scale = np.broadcast_to(w_scale, (out_channels,))
    bias_real = _const(model, g, op.inputs[2])
    c = b + 128.0 * a if border_offset is None else border_offset
    new_bias_real = bias_real + c * w_real.sum(axis=1)
    new_bias_scale = a * w_scale
    new_bias = np.round(new_bias_real / new_bias_scale)
    if np.abs(new_bias).max() >= 2 ** 31:
        raise KvasirError("the folded bias does not fit int32; export without folding")
    model.buffers[bias_t.buffer].data = np.frombuffer(new_bias.astype("<i4").tobytes(), np.uint8)
    bias_t.quantization.scale = new_bias_scale.astype(np.float32)
    bias_t.quantization.zeroPoint = np.zeros(out_channels, np.int64)
    inp.quantization.scale = np.asarray([a], np.float32)
    inp.quantization.zeroPoint = np.asarray([0], np.int64)
    op.inputs = np.asarray([g.inputs[0], *op.inputs[1:]], np.int32)
    remap = _remove_ops(g, {mul, add})
    for sig in model.signatureDefs or []:
        for t in list(sig.inputs or []) + list(sig.outputs or []):
            t.tensorIndex = remap[int(t.tensorIndex)]
    return write_model(model), {"folded": True, "removed_ops": ["MUL", "ADD"], "pixel_scale": a,
                                "pixel_offset": b, "input_tensor_scale": a, "input_tensor_zero_point": 0,
                                "border_offset": c}
