package io.kvasirtf.core

/**
 * The interpreter behind a small interface: the app wraps LiteRT's Interpreter, the JVM tests
 * use a fake. Tensors are int8 byte buffers in NHWC order.
 */
interface InferenceEngine : AutoCloseable {
    /** The model's input and output as the interpreter reports them (shape, dtype, quantization). */
    val input: TensorSpec
    val output: TensorSpec

    /** Which delegate actually runs ("XNNPACK (CPU)", "GPU", "NNAPI"), for the screen and the log. */
    val delegate: String

    /** One invoke: [input] holds input.elements bytes, [output] receives output.elements bytes. */
    fun run(input: ByteArray, output: ByteArray)

    override fun close() {}
}

/**
 * Why the interpreter's tensors do not match the sidecar, or null when they do. A mismatch
 * means the .tflite and the sidecar come from different conversions, or the app would feed a
 * wrongly sized or wrongly quantized input.
 */
fun engineMismatch(spec: ModelSpec, engine: InferenceEngine): String? {
    fun differs(role: String, want: TensorSpec, got: TensorSpec): String? = when {
        want.shape != got.shape -> "$role shape ${got.shape} in the model, ${want.shape} in the sidecar"
        want.dtype != got.dtype -> "$role dtype ${got.dtype} in the model, ${want.dtype} in the sidecar"
        want.zeroPoint != got.zeroPoint -> "$role zero point ${got.zeroPoint} in the model, ${want.zeroPoint} in the sidecar"
        !closeScale(want.scale, got.scale) -> "$role scale ${got.scale} in the model, ${want.scale} in the sidecar"
        else -> null
    }
    return differs("input", spec.input, engine.input) ?: differs("output", spec.output, engine.output)
}

/** Scales are float32 in the flatbuffer and float64 in JSON: equal when they agree as float32. */
private fun closeScale(a: Double?, b: Double?): Boolean =
    if (a == null || b == null) a == b else a.toFloat() == b.toFloat()
