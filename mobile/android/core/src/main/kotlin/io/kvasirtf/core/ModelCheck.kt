package io.kvasirtf.core

import java.nio.ByteBuffer
import java.security.MessageDigest

/** What the screen shows before (or instead of) predictions; [message] says what to do. */
sealed class ModelState {
    abstract val message: String

    /** No model in the app's assets (the files are not in the repository; kvasir-android-assets copies them). */
    data class Missing(val files: List<String>) : ModelState() {
        override val message get() = "No model in the app: ${files.joinToString()} missing from assets. " +
            "From the kvasir_tf repository: $INSTALL_COMMAND, then rebuild and reinstall."
    }

    /** The sidecar or labels cannot be used (not int8, malformed, labels disagree). */
    data class Invalid(val reason: String) : ModelState() {
        override val message get() = "Model files unusable: $reason"
    }

    /** The sidecar describes another .tflite (its sha256 differs from the bundled file's). */
    data class ShaMismatch(val expected: String, val actual: String) : ModelState() {
        override val message get() = "The sidecar does not describe this model: sha256 ${actual.take(12)}… " +
            "in assets, ${expected.take(12)}… in the sidecar. Copy model, sidecar and labels from one export/ folder."
    }

    /** The interpreter's tensors disagree with the sidecar (shape, dtype or quantization). */
    data class InputMismatch(val reason: String) : ModelState() {
        override val message get() = "The model does not match its sidecar: $reason. Re-export with tools/convert.py --int8."
    }

    data class Ready(val spec: ModelSpec, val labels: List<String>) : ModelState() {
        override val message get() = "${spec.tflite}: ${spec.imageSize} px, ${labels.size} classes, sha256 ${spec.sha256.take(12)}…"
    }
}

/** The command (installed with the kvasir_tf package) that copies a converted model into the app's assets. */
const val INSTALL_COMMAND = "kvasir-android-assets runs/NAME"

object ModelCheck {
    /**
     * The sha256 of the model's bytes from position 0 to the limit. The buffer's position is left
     * alone: the app hands the same memory-mapped buffer to the interpreter afterwards.
     */
    fun sha256Hex(model: ByteBuffer): String {
        val md = MessageDigest.getInstance("SHA-256")
        md.update(model.duplicate().apply { rewind() })
        return md.digest().joinToString("") { "%02x".format(it.toInt() and 0xFF) }
    }

    /**
     * The checks that need no interpreter: files present, sidecar valid, sha256 and labels agree.
     * [model] is the .tflite as the app maps it (a MappedByteBuffer: no heap copy).
     */
    fun check(model: ByteBuffer?, sidecarJson: String?, labelsText: String?): ModelState {
        val missing = listOfNotNull(
            ModelSpec.MODEL_NAME.takeIf { model == null },
            ModelSpec.SIDECAR_NAME.takeIf { sidecarJson == null },
            ModelSpec.LABELS_NAME.takeIf { labelsText == null },
        )
        if (missing.isNotEmpty()) return ModelState.Missing(missing)
        val spec = try {
            ModelSpec.parse(sidecarJson!!)
        } catch (e: ModelError) {
            return ModelState.Invalid(e.message ?: "bad sidecar")
        }
        val actual = sha256Hex(model!!)
        if (actual != spec.sha256) return ModelState.ShaMismatch(spec.sha256, actual)
        val labels = parseLabels(labelsText!!)
        try {
            checkLabels(spec, labels)
        } catch (e: ModelError) {
            return ModelState.Invalid(e.message ?: "bad labels")
        }
        return ModelState.Ready(spec, labels)
    }

    /** The last check, once the interpreter is built: its tensors must be the sidecar's. */
    fun checkEngine(ready: ModelState.Ready, engine: InferenceEngine): ModelState =
        engineMismatch(ready.spec, engine)?.let { ModelState.InputMismatch(it) } ?: ready
}
