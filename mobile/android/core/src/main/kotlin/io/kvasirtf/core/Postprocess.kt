package io.kvasirtf.core

/** One ranked class: its index in the model output, its label and its probability. */
data class Prediction(val index: Int, val label: String, val confidence: Float)

object Postprocess {
    /** probability = (q - zeroPoint) * scale, in float32 like kvasir_tf.runtime.dequantize_output. */
    fun dequantize(output: ByteArray, scale: Float, zeroPoint: Int): FloatArray =
        FloatArray(output.size) { (output[it].toInt() - zeroPoint).toFloat() * scale }

    /** Indices of the k largest scores, best first; ties go to the lowest index (numpy argmax's rule). */
    fun topK(scores: FloatArray, k: Int): IntArray {
        val n = minOf(k, scores.size)
        val taken = BooleanArray(scores.size)
        return IntArray(n) {
            var best = -1
            for (i in scores.indices) {
                if (!taken[i] && (best < 0 || scores[i] > scores[best])) best = i
            }
            taken[best] = true
            best
        }
    }

    /** The top-k predictions of one int8 output tensor, named from the labels, with the
     *  sidecar's temperature applied ([Confidence]); the decision is the top class or
     *  [Confidence.UNCERTAIN] below the sidecar's abstain threshold. */
    fun predictions(output: ByteArray, spec: ModelSpec, labels: List<String>, k: Int = 3): Pair<List<Prediction>, Int> {
        val probs = Confidence.scaledProbabilities(output, spec.output.scale!!.toFloat(), spec.output.zeroPoint!!,
            spec.temperature.toFloat())
        val top = topK(probs, k).map { Prediction(it, labels.getOrElse(it) { "class_$it" }, probs[it]) }
        return top to Confidence.decide(probs, spec.abstainBelow?.toFloat())
    }
}
