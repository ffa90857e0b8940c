package io.kvasirtf.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File

/**
 * The core against golden vectors from the Python reference (kvasir_tf.device_preprocessing via
 * kvasir_tf.golden) made from real Kvasir images: identical int8 input tensors, and the same
 * top-1 (and probabilities) for the same int8 output tensor.
 */
class GoldenVectorsTest {
    private fun rgbCases(): List<GoldenCase> {
        val root = Golden.root()
        assumeTrue("no -Dkvasir.golden: golden vectors are written by tests/test_android_core.py", root != null)
        assertTrue("golden folder $root does not exist", root!!.isDirectory)
        val cases = Golden.folders(root).flatMap { Golden.cases(it) }.filter { it.format == "rgb888" }
        assertTrue("no rgb888 cases under $root", cases.isNotEmpty())
        return cases
    }

    @Test
    fun inputTensorsAreIdentical() {
        val report = StringBuilder("folder\tname\tsize\tbytes\tmismatches\n")
        for (c in rgbCases()) {
            val argb = DevicePreprocessing.rgb888ToArgb(c.bytes("frame"), c.width, c.height)
            val got = DevicePreprocessing.argbToInput(argb, c.width, c.height, c.size, InputQuant(c.scale, c.zeroPoint))
            val want = c.bytes("input")
            val mismatches = got.indices.count { got[it] != want[it] }
            report.append("${c.dir.name}\t${c.name}\t${c.size}\t${got.size}\t$mismatches\n")
            assertEquals("${c.dir.name}/${c.name}: input length", want.size, got.size)
            assertArrayEquals("${c.dir.name}/${c.name}: $mismatches of ${want.size} int8 inputs differ", want, got)
        }
        Golden.reportDir()?.let { File(it, "golden_inputs.tsv").writeText(report.toString()) }
    }

    @Test
    fun sameOutputGivesSameTop1AndProbabilities() {
        val withOutput = rgbCases().filter { it.hasOutput() }
        assumeTrue("no golden output tensors (no model given to kvasir_tf.golden)", withOutput.isNotEmpty())
        val report = StringBuilder("folder\tname\ttop1_python\ttop1_kotlin\tconfidence\n")
        for (c in withOutput) {
            val out = c.bytes("output")
            assertEquals(c.numClasses, out.size)
            val probs = Postprocess.dequantize(out, c.outputScale, c.outputZeroPoint)
            for (i in out.indices) {
                assertEquals((out[i] - c.outputZeroPoint).toFloat() * c.outputScale, probs[i], 0f)
            }
            val top = Postprocess.topK(probs, 3)
            report.append("${c.dir.name}\t${c.name}\t${c.top1}\t${top[0]}\t${probs[top[0]]}\n")
            assertEquals("${c.dir.name}/${c.name}: top-1", c.top1, top[0])
        }
        Golden.reportDir()?.let { File(it, "golden_top1.tsv").writeText(report.toString()) }
    }
}
