package io.kvasirtf.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.util.Locale

/**
 * The benchmark action's timings and log lines. The log it writes to -Dkvasir.report is what
 * tests/test_android_core.py feeds to kvasir_tf.device_logs.parse_benchmark_model.
 */
class BenchmarkTest {
    private val warmupUs = longArrayOf(21034, 15000, 14100)
    private val runsUs = longArrayOf(13102, 13400, 13250, 15933, 13090, 13164, 13671, 13300, 13200, 13120, 13110)

    /** A clock that makes invoke k last durations[k] microseconds. */
    private fun clockFor(durations: LongArray): () -> Long {
        var t = 5_000_000L
        var call = 0
        return {
            val k = call / 2
            if (call++ % 2 == 1) t += durations[k] * 1000
            t
        }
    }

    private fun result(): BenchmarkResult {
        val spec = TensorSpec(listOf(1, 4, 4, 3), "int8", 1.0, -128)
        val out = TensorSpec(listOf(1, 2), "int8", 1.0 / 256, -128)
        val engine = FakeEngine(spec, out, { ByteArray(2) }, delegate = "XNNPACK (CPU)")
        val r = Benchmark.run(engine, ByteArray(48), warmup = warmupUs.size, runs = runsUs.size, initUs = 38214,
            numThreads = 4, graph = "model.tflite", modelSizeBytes = 3_577_240, clock = clockFor(warmupUs + runsUs))
        assertEquals(warmupUs.size + runsUs.size, engine.invokes)
        return r
    }

    @Test
    fun timingsAreTheInvokesInMicroseconds() {
        val r = result()
        assertArrayEquals(warmupUs, r.warmupUs)
        assertArrayEquals(runsUs, r.runsUs)
        val s = TimingStats(r.runsUs)
        assertEquals(13090L, s.min)
        assertEquals(15933L, s.max)
        assertEquals(13200L, s.percentile(50))         // sorted[11 * 50 / 100] = sorted[5]
        assertEquals(runsUs.average(), s.avg, 1e-9)
    }

    @Test
    fun logLinesIgnoreACommaDecimalLocale() {
        val saved = Locale.getDefault()
        Locale.setDefault(Locale.GERMANY)
        val lines = try {
            Benchmark.logLines(result())
        } finally {
            Locale.setDefault(saved)
        }
        assertTrue(lines.all { it.startsWith("INFO: ") })
        val timing = lines.single { "Inference timings in us:" in it }
        assertFalse("a comma decimal in: $timing", Regex("\\d,\\d").containsMatchIn(timing))
        assertTrue(lines.any { it == "INFO: Num threads: [4]" })
        assertTrue(lines.any { it.startsWith("INFO: count=11 first=13102 curr=13110 min=13090 max=15933") })
        assertTrue(timing.startsWith("INFO: Inference timings in us: Init: 38214, First inference: 21034, Warmup (avg): 16711.3"))
        Golden.reportDir()?.let { dir ->
            File(dir, "benchmark_app.log").writeText(lines.joinToString("\n") + "\n")
            File(dir, "benchmark_timings.tsv").writeText(
                "warmup\t${warmupUs.joinToString(",")}\nruns\t${runsUs.joinToString(",")}\ninit\t38214\n")
        }
    }
}
