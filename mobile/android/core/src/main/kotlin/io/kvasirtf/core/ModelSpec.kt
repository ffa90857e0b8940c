package io.kvasirtf.core

/** A problem with the model files (missing, mismatched, malformed); the message says the fix. */
class ModelError(message: String) : Exception(message)

/** One tensor as the sidecar (or the interpreter) describes it; scale/zeroPoint are null for float. */
data class TensorSpec(
    val shape: List<Int>,
    val dtype: String,
    val scale: Double?,
    val zeroPoint: Int?,
) {
    val elements: Int get() = shape.fold(1) { a, b -> a * b }
}

/**
 * What the app knows about its model, all read from the JSON sidecar that tools/convert.py
 * writes beside the .tflite (nothing hard-coded): input size and pixel map, output map, classes,
 * and the sha256 of the exact file the sidecar describes.
 */
data class ModelSpec(
    val imageSize: Int,
    val input: TensorSpec,
    val output: TensorSpec,
    val classNames: List<String>,
    val sha256: String,
    val tflite: String,
    val mode: String,
    /** output.temperature, fitted on validation by kvasir-convert; 1 for files written before it. */
    val temperature: Double = 1.0,
    /** output.abstain_below: below this (temperature-scaled) probability the app says "uncertain"; null: never. */
    val abstainBelow: Double? = null,
) {
    /** The int8 input map (the device path of kvasir_tf.device_preprocessing). */
    val inputQuant: InputQuant
        get() = InputQuant(input.scale!!.toFloat(), input.zeroPoint!!)

    companion object {
        const val SIDECAR_NAME = "model.json"
        const val MODEL_NAME = "model.tflite"
        const val LABELS_NAME = "labels.txt"

        /** Parse and check a sidecar: only a full-integer (int8 in, int8 out) model runs here. */
        fun parse(json: String): ModelSpec {
            val root = Json.parse(json) as? Map<*, *> ?: throw ModelError("sidecar is not a JSON object")
            val size = int(root, "image_size")
            val input = tensor(root, "input")
            val output = tensor(root, "output")
            val names = (root["class_names"] as? List<*>)?.map { it as? String ?: throw ModelError("class_names must be strings") }
                ?: throw ModelError("sidecar has no class_names; re-run tools/convert.py --int8")
            val out = root["output"] as? Map<*, *> ?: emptyMap<Any, Any>()
            val spec = ModelSpec(size, input, output, names, str(root, "sha256").lowercase(),
                root["tflite"] as? String ?: "?", root["mode"] as? String ?: "?",
                out["temperature"] as? Double ?: 1.0, out["abstain_below"] as? Double)
            spec.check()
            return spec
        }

        private fun str(m: Map<*, *>, key: String): String =
            m[key] as? String ?: throw ModelError("sidecar has no '$key'; re-run tools/convert.py --int8")

        private fun int(m: Map<*, *>, key: String): Int {
            val v = m[key] as? Double ?: throw ModelError("sidecar has no numeric '$key'; re-run tools/convert.py --int8")
            if (v != Math.floor(v)) throw ModelError("sidecar '$key' = $v is not an integer")
            return v.toInt()
        }

        private fun tensor(root: Map<*, *>, key: String): TensorSpec {
            val m = root[key] as? Map<*, *> ?: throw ModelError("sidecar has no '$key' tensor; re-run tools/convert.py --int8")
            val shape = (m["shape"] as? List<*>)?.map { (it as? Double)?.toInt() ?: throw ModelError("$key.shape must be numbers") }
                ?: throw ModelError("sidecar $key has no shape")
            val zp = m["zero_point"] as? Double
            return TensorSpec(shape, str(m, "dtype"), m["scale"] as? Double, zp?.toInt())
        }
    }

    private fun check() {
        if (input.dtype != "int8" || output.dtype != "int8" || input.scale == null || output.scale == null ||
            input.zeroPoint == null || output.zeroPoint == null) {
            throw ModelError("the sidecar describes a $mode model (input ${input.dtype}, output ${output.dtype}); " +
                "the app runs the full-integer model: tools/convert.py RUN --int8")
        }
        if (input.scale <= 0.0 || output.scale <= 0.0) throw ModelError("sidecar scales must be positive")
        if (input.shape != listOf(1, imageSize, imageSize, 3)) {
            throw ModelError("sidecar input shape ${input.shape} is not [1, $imageSize, $imageSize, 3]")
        }
        if (output.elements != classNames.size) {
            throw ModelError("sidecar output ${output.shape} does not hold ${classNames.size} class scores")
        }
        if (!(temperature > 0.0)) throw ModelError("sidecar output.temperature = $temperature must be > 0; re-run kvasir-convert")
        abstainBelow?.let {
            if (it <= 0.0 || it > 1.0) throw ModelError("sidecar output.abstain_below = $it must lie in (0, 1]")
        }
        if (!Regex("[0-9a-f]{64}").matches(sha256)) throw ModelError("sidecar sha256 '$sha256' is not a sha256 hex digest")
    }
}

/** labels.txt: one class name a line (trailing blank lines ignored). */
fun parseLabels(text: String): List<String> =
    text.split('\n').map { it.trimEnd('\r') }.dropLastWhile { it.isEmpty() }

/** The labels must be the sidecar's classes in the same order, or the app would name the wrong class. */
fun checkLabels(spec: ModelSpec, labels: List<String>) {
    if (labels != spec.classNames) {
        throw ModelError("labels.txt (${labels.size} lines) differs from the sidecar's class_names " +
            "(${spec.classNames.size}); copy both from the same export/ folder (kvasir-android-assets)")
    }
}
