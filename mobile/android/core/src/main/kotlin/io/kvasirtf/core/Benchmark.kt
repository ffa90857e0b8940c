package io.kvasirtf.core

import java.util.Locale
import kotlin.math.sqrt

/** Timings of one benchmark: session init, warm-up invokes and measured invokes, in microseconds. */
class BenchmarkResult(
    val initUs: Long,
    val warmupUs: LongArray,
    val runsUs: LongArray,
    val numThreads: Int,
    val graph: String,
    val modelSizeBytes: Long,
    val delegate: String,
) {
    init {
        require(runsUs.isNotEmpty()) { "a benchmark needs at least one measured run" }
    }
}

/** Summary of one list of timings, as LiteRT's benchmark_model prints it ("count=... median=..."). */
class TimingStats(values: LongArray) {
    val count = values.size
    val first = values.first()
    val curr = values.last()
    private val sorted = values.sortedArray()
    val min = sorted.first()
    val max = sorted.last()
    val avg = values.average()
    val std: Long = Math.round(sqrt(values.sumOf { (it - avg) * (it - avg) } / count))

    /** Nearest rank on the sorted values: sorted[min(n - 1, n * p / 100)] (the median is the upper middle). */
    fun percentile(p: Int): Long = sorted[minOf(count - 1, count * p / 100)]

    fun line(): String = String.format(
        Locale.ROOT, "count=%d first=%d curr=%d min=%d max=%d avg=%.1f std=%d p5=%d median=%d p95=%d",
        count, first, curr, min, max, avg, std, percentile(5), percentile(50), percentile(95),
    )
}

/**
 * The app's "benchmark" action: N invokes on one input, logged in the lines of LiteRT's
 * benchmark_model so kvasir_tf.device_logs.parse_benchmark_model (and tools/compare.py
 * --device-log ROW=LOG) read the phone's figures. Numbers use Locale.ROOT: a phone set to a
 * comma-decimal locale must not write "13,5".
 */
object Benchmark {
    fun run(
        engine: InferenceEngine, input: ByteArray, warmup: Int, runs: Int, initUs: Long,
        numThreads: Int, graph: String, modelSizeBytes: Long, clock: () -> Long = System::nanoTime,
    ): BenchmarkResult {
        require(runs >= 1 && warmup >= 0) { "runs must be >= 1 and warmup >= 0" }
        val output = ByteArray(engine.output.elements)
        fun timed(n: Int) = LongArray(n) {
            val t0 = clock()
            engine.run(input, output)
            (clock() - t0) / 1000
        }
        val w = timed(warmup)
        return BenchmarkResult(initUs, w, timed(runs), numThreads, graph, modelSizeBytes, engine.delegate)
    }

    fun logLines(r: BenchmarkResult): List<String> {
        val runs = TimingStats(r.runsUs)
        val warm = if (r.warmupUs.isNotEmpty()) TimingStats(r.warmupUs) else null
        val first = warm?.first ?: runs.first
        val d = r.delegate.lowercase(Locale.ROOT)
        val lines = mutableListOf(
            "STARTING! (kvasir_tf Android app benchmark)",
            "Num threads: [${r.numThreads}]",
            "Graph: [${r.graph}]",
            "Use gpu: [${if ("gpu" in d) 1 else 0}]",
            "Use nnapi: [${if ("nnapi" in d) 1 else 0}]",
            "Use xnnpack: [${if ("xnnpack" in d) 1 else 0}]",
            "Delegate: [${r.delegate}]",
            String.format(Locale.ROOT, "The input model file size (MB): %.6f", r.modelSizeBytes / 1e6),
            String.format(Locale.ROOT, "Initialized session in %.3fms.", r.initUs / 1e3),
        )
        warm?.let { lines += it.line() }
        lines += runs.line()
        lines += String.format(
            Locale.ROOT, "Inference timings in us: Init: %d, First inference: %d, Warmup (avg): %.1f, Inference (avg): %.1f",
            r.initUs, first, warm?.avg ?: first.toDouble(), runs.avg,
        )
        return lines.map { "INFO: $it" }
    }
}
