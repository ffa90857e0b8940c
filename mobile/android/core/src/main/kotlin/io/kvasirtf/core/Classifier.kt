package io.kvasirtf.core

/** One classified frame: the top classes, the decision (the top class's index, or
 *  [Confidence.UNCERTAIN]) and the time spent in preprocessing and in invoke. */
data class Classification(
    val top: List<Prediction>,
    val preprocessNanos: Long,
    val inferenceNanos: Long,
    val decision: Int = top.firstOrNull()?.index ?: Confidence.UNCERTAIN,
) {
    val uncertain: Boolean get() = decision == Confidence.UNCERTAIN
}

/**
 * Frame -> top-k through the device path. Not thread-safe: one classifier per analysis thread
 * (the pixel, input and output buffers are reused between frames).
 */
class Classifier(
    val spec: ModelSpec,
    val labels: List<String>,
    private val engine: InferenceEngine,
    private val clock: () -> Long = System::nanoTime,
) {
    private val quant = spec.inputQuant
    private val pixels = IntArray(spec.input.elements)
    private val input = ByteArray(spec.input.elements)
    private val output = ByteArray(spec.output.elements)

    init {
        engineMismatch(spec, engine)?.let { throw ModelError(it) }
    }

    val delegate: String get() = engine.delegate

    fun classify(argb: IntArray, width: Int, height: Int, k: Int = 3): Classification {
        val t0 = clock()
        DevicePreprocessing.argbToInput(argb, width, height, spec.imageSize, quant, input, pixels)
        val t1 = clock()
        engine.run(input, output)
        val t2 = clock()
        val (top, decision) = Postprocess.predictions(output, spec, labels, k)
        return Classification(top, t1 - t0, t2 - t1, decision)
    }

    /** The input tensor of the last frame (the benchmark re-runs it). */
    fun lastInput(): ByteArray = input.copyOf()
}

/** Median of the last [capacity] values: the latency the screen shows, steady against one slow frame. */
class RollingMedian(private val capacity: Int = 30) {
    private val values = ArrayDeque<Long>()

    fun add(v: Long) {
        values.addLast(v)
        while (values.size > capacity) values.removeFirst()
    }

    val count: Int get() = values.size

    fun clear() = values.clear()

    /** The lower middle value for an even count (an observed value, never an average of two). */
    fun median(): Long? = if (values.isEmpty()) null else values.sorted()[(values.size - 1) / 2]
}
