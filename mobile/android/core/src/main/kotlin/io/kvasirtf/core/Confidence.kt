package io.kvasirtf.core

import kotlin.math.exp
import kotlin.math.ln
import kotlin.math.max

/**
 * How sure the model is, as kvasir_tf.confidence computes it (golden vectors pin the two): the
 * int8 output dequantized, floored at half an output step, divided by the temperature the
 * sidecar carries (fitted on validation), then the top class or [UNCERTAIN] below the sidecar's
 * abstain threshold. The temperature never changes which class is on top, only how sure.
 */
object Confidence {
    const val UNCERTAIN = -1

    /** softmax(ln(max(p, scale / 2)) / temperature) with p = scale * (q - zeroPoint). */
    fun scaledProbabilities(output: ByteArray, scale: Float, zeroPoint: Int, temperature: Float): FloatArray {
        require(temperature > 0f) { "temperature must be > 0, got $temperature" }
        val floor = scale * 0.5f
        val logits = FloatArray(output.size) {
            ln(max((output[it].toInt() - zeroPoint).toFloat() * scale, floor)) / temperature
        }
        val top = logits.maxOrNull() ?: return logits
        var sum = 0f
        for (i in logits.indices) {
            logits[i] = exp(logits[i] - top)
            sum += logits[i]
        }
        for (i in logits.indices) logits[i] /= sum
        return logits
    }

    /** The top class (lowest index on ties), or [UNCERTAIN] when its probability is below [abstainBelow] (null: never). */
    fun decide(probs: FloatArray, abstainBelow: Float?): Int {
        val best = Postprocess.topK(probs, 1).firstOrNull() ?: return UNCERTAIN
        return if (abstainBelow != null && probs[best] < abstainBelow) UNCERTAIN else best
    }
}
