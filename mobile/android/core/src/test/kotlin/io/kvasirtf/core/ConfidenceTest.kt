package io.kvasirtf.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File

/**
 * Temperature scaling and the "uncertain" decision against kvasir_tf.golden's confidence.tsv
 * (written by tests/test_android_core.py from kvasir_tf.confidence, the Python reference).
 */
class ConfidenceTest {
    @Test
    fun probabilitiesAndDecisionsEqualThePythonReference() {
        val root = Golden.root()
        assumeTrue("no -Dkvasir.golden: golden vectors are written by tests/test_android_core.py", root != null)
        val tsv = File(root, "confidence.tsv")
        assertTrue("$tsv does not exist", tsv.isFile)
        val lines = tsv.readLines().filter { it.isNotBlank() }
        val header = lines.first().split('\t')
        val report = StringBuilder("name\tdecision\tmax_abs_diff\n")
        for (line in lines.drop(1)) {
            val v = header.zip(line.split('\t')).toMap()
            val name = v.getValue("name")
            val scores = v.getValue("scores").split(',').map { it.toInt().toByte() }.toByteArray()
            val want = v.getValue("probabilities").split(',').map { it.toDouble().toFloat() }
            val below = v.getValue("abstain_below").let { if (it == "none") null else it.toDouble().toFloat() }
            val probs = Confidence.scaledProbabilities(
                scores, v.getValue("output_scale").toDouble().toFloat(), v.getValue("output_zero_point").toInt(),
                v.getValue("temperature").toDouble().toFloat(),
            )
            val decision = Confidence.decide(probs, below)
            val worst = probs.indices.maxOf { kotlin.math.abs(probs[it] - want[it]) }
            report.append("$name\t$decision\t$worst\n")
            assertEquals("$name: decision", v.getValue("decision").toInt(), decision)
            assertTrue("$name: probabilities differ by $worst", worst <= 1e-5f)
        }
        Golden.reportDir()?.let { File(it, "confidence.tsv").writeText(report.toString()) }
    }

    @Test
    fun temperatureKeepsTheTopClassAndSoftensIt() {
        val out = byteArrayOf(-128, 60, -20, 10)
        val t1 = Confidence.scaledProbabilities(out, 1f / 256, -128, 1f)
        val t3 = Confidence.scaledProbabilities(out, 1f / 256, -128, 3f)
        assertEquals(1, Confidence.decide(t1, null))
        assertEquals(1, Confidence.decide(t3, null))
        assertTrue(t3[1] < t1[1])
        assertEquals(1f, t3.sum(), 1e-6f)
        assertEquals(Confidence.UNCERTAIN, Confidence.decide(t3, t3[1] + 0.01f))
    }

    @Test
    fun theSidecarsTemperatureAndThresholdReachTheClassifier() {
        val base = """{"tflite": "m.tflite", "mode": "int8", "sha256": "${"ab".repeat(32)}", "image_size": 2,
            "input": {"shape": [1, 2, 2, 3], "dtype": "int8", "scale": 1.0, "zero_point": -128},
            "output": {"shape": [1, 3], "dtype": "int8", "scale": 0.00390625, "zero_point": -128OUT},
            "class_names": ["a", "b", "c"]}"""
        val plain = ModelSpec.parse(base.replace("OUT", ""))
        assertEquals(1.0, plain.temperature, 0.0)
        assertEquals(null, plain.abstainBelow)
        val spec = ModelSpec.parse(base.replace("OUT", ", \"temperature\": 2.0, \"abstain_below\": 0.5"))
        assertEquals(2.0, spec.temperature, 0.0)
        // Output 0.50 / 0.30 / 0.20: at T = 1 class 0 clears 0.5; at T = 2 it falls below.
        val out = byteArrayOf((128 - 128).toByte(), (77 - 128).toByte(), (51 - 128).toByte())
        val pixels = IntArray(4) { 0xFF808080.toInt() }
        for ((s, want) in listOf(plain to 0, spec to Confidence.UNCERTAIN)) {
            val clf = Classifier(s, s.classNames, FakeEngine.matching(s) { out })
            val r = clf.classify(pixels, 2, 2)
            assertEquals(want, r.decision)
            assertEquals(0, r.top[0].index)
            val probs = Confidence.scaledProbabilities(out, 0.00390625f, -128, s.temperature.toFloat())
            assertEquals(probs[0], r.top[0].confidence, 0f)
        }
        for (bad in listOf("\"temperature\": 0", "\"temperature\": 1.0, \"abstain_below\": 1.5")) {
            try {
                ModelSpec.parse(base.replace("OUT", ", $bad"))
                throw AssertionError("accepted $bad")
            } catch (e: ModelError) {
                assertTrue(e.message!!, e.message!!.contains("output."))
            }
        }
    }
}
