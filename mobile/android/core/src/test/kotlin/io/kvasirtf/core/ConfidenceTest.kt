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
}
