"""The LiteRT runtime: load a .tflite, inspect its ops, feed raw pixels through its input map.

Every consumer of a deployed model (conversion's verification, evaluation, saliency maps, the
micro export's reference outputs) runs it through here, so they all feed it the way a device
does: raw pixels quantized with the model's own scale and zero point, outputs dequantized.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kvasir_tf.errors import KvasirError, first_line
from kvasir_tf.file_types import is_tflite_file
from kvasir_tf.preprocessing import pixels_to_int8

FLOAT_DTYPES = (np.float32, np.float16, np.float64)


def make_interpreter(model_content=None, model_path=None, num_threads=None, delegates=True):
    """An ai-edge-litert interpreter; ``delegates=False`` runs the plain builtin kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kwargs = {"num_threads": num_threads} if num_threads else {}
    if not delegates:  # plain builtin kernels, so the op list shows the model's own ops
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_content=model_content, model_path=str(model_path) if model_path else None,
                       **kwargs)


def inspect_tflite(content: bytes) -> dict:
    """Op list, input/output details and the ops that touch a float tensor."""
    it = make_interpreter(model_content=content, delegates=False)
    it.allocate_tensors()
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops, float_ops = [], []
    for op in it._get_ops_details():
        ops.append(op["op_name"])
        idx = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i in tensors]
        dtypes = {np.dtype(tensors[i]["dtype"]) for i in idx}
        if any(d in dtypes for d in map(np.dtype, FLOAT_DTYPES)):
            float_ops.append(f"{op['op_name']}#{op['index']}")
    return {"ops": ops, "float_ops": float_ops,
            "input": it.get_input_details()[0], "output": it.get_output_details()[0]}


def quantize_input(pixels: np.ndarray, detail: dict) -> np.ndarray:
    """Raw pixels -> the input tensor's dtype using its own scale/zero point."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.int8 or dtype == np.uint8:
        scale, zp = detail["quantization"]
        if dtype == np.int8:
            return pixels_to_int8(pixels, scale, zp)
        q = np.round(np.asarray(pixels, np.float32) / scale) + zp
        return np.clip(q, 0, 255).astype(np.uint8)
    return np.asarray(pixels, dtype=dtype)


def dequantize_output(values: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
        scale, zp = detail["quantization"]
        return (values.astype(np.float32) - zp) * scale
    return values.astype(np.float32)


def run_once(content: bytes, image: np.ndarray) -> np.ndarray:
    """Run one image through the runtime the app uses (with XNNPACK) to prove it executes."""
    it = make_interpreter(model_content=content)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], quantize_input(image[None], inp))
    it.invoke()
    return dequantize_output(it.get_tensor(out["index"]), out)


def raw_runner(model_path=None, model_content=None, reference=False):
    """(run, output quantization): ``run(q)`` feeds the input tensor as stored (int8 for a device
    model) and returns the output tensor as stored; for golden vectors and bit-exact checks.
    ``reference``: LiteRT's reference kernels (what TFLM is compared against)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kwargs = {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF} if reference else {}
    it = Interpreter(model_path=str(model_path) if model_path else None, model_content=model_content,
                     **kwargs)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]

    def run(q):
        it.set_tensor(inp["index"], np.ascontiguousarray(q, inp["dtype"]))
        it.invoke()
        return it.get_tensor(out["index"]).copy()
    return run, out["quantization"]


class TFLiteModel:
    """A .tflite (with its checked sidecar, when present) mapping uint8 pixels [N,S,S,3] to probabilities.

    Batches by resizing the interpreter's input, so N images cost one invoke, not N; a model
    whose ops cannot take a batch falls back to one image per invoke.
    """

    def __init__(self, path, num_threads=None):
        from kvasir_tf.artifact import load_sidecar
        self.path = Path(path)
        if not self.path.is_file() or not is_tflite_file(self.path):
            raise KvasirError(f"{self.path} is not a TFLite model; pass a .tflite written by tools/convert.py")
        self.sidecar = load_sidecar(self.path)
        self.class_names = list(self.sidecar["class_names"]) if self.sidecar else None
        try:
            self.interpreter = make_interpreter(model_path=self.path, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise KvasirError(f"{self.path} does not load in ai-edge-litert: {first_line(exc)}") from None
        inp = self.interpreter.get_input_details()[0]
        self.image_size = int(inp["shape"][1])
        self.num_classes = int(self.interpreter.get_output_details()[0]["shape"][-1])
        self.batch = 1

    def input_detail(self) -> dict:
        """The interpreter's input detail, with the sidecar's pixel map when there is one."""
        d = dict(self.interpreter.get_input_details()[0])
        if self.sidecar and self.sidecar["input"].get("scale") is not None:
            d["quantization"] = (self.sidecar["input"]["scale"], self.sidecar["input"]["zero_point"])
        return d

    def resize_batch(self, n: int) -> bool:
        """Set the input batch to ``n``; False (and batch 1) when the model cannot take it."""
        if n == self.batch:
            return True
        it = self.interpreter
        index = it.get_input_details()[0]["index"]
        try:
            it.resize_tensor_input(index, [n, self.image_size, self.image_size, 3])
            it.allocate_tensors()
        except (RuntimeError, ValueError):
            it.resize_tensor_input(index, [1, self.image_size, self.image_size, 3])
            it.allocate_tensors()
            self.batch = 1
            return False
        self.batch = n
        return True

    def invoke(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for exactly ``self.batch`` images of raw pixels."""
        it = self.interpreter
        it.set_tensor(it.get_input_details()[0]["index"], quantize_input(pixels, self.input_detail()))
        it.invoke()
        out = it.get_output_details()[0]
        return dequantize_output(it.get_tensor(out["index"]), out)

    def predict(self, images, batch_size=32) -> np.ndarray:
        images = check_images(images, self.image_size)
        if len(images) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        b = max(1, min(int(batch_size), len(images)))
        if not self.resize_batch(b):
            b = 1
        outs = []
        for i in range(0, len(images), b):
            chunk = images[i:i + b]
            n = len(chunk)
            if n < b:  # pad the last batch instead of re-allocating the interpreter
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self.invoke(chunk)[:n])
        return np.concatenate(outs).astype(np.float32)


    def classify(self, images, batch_size=32) -> tuple:
        """What a device reports: (probabilities scaled by the sidecar's ``output.temperature``,
        decisions: the class, or ``confidence.UNCERTAIN`` below ``output.abstain_below``).
        Without them in the sidecar: T = 1 and no abstaining."""
        from kvasir_tf import confidence
        fitted = confidence.from_sidecar(self.sidecar) or {"temperature": 1.0, "abstain_below": None}
        probs = confidence.apply_temperature(self.predict(images, batch_size), fitted["temperature"],
                                             confidence.floor_of(self.sidecar))
        return probs, confidence.decide(probs, fitted["abstain_below"])


def check_images(images, image_size: int) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (image_size, image_size, 3):
        raise KvasirError(f"images must be [N, {image_size}, {image_size}, 3] raw pixels, got "
                          f"{images.shape}; load them with kvasir_tf.data.pipeline.load_images")
    return images
