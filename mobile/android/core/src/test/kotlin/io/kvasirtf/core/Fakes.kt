package io.kvasirtf.core

import java.io.File

/** An interpreter stand-in: fixed tensors, returns a canned output, counts invokes. */
class FakeEngine(
    override val input: TensorSpec,
    override val output: TensorSpec,
    private val answer: (ByteArray) -> ByteArray,
    override val delegate: String = "XNNPACK (CPU)",
) : InferenceEngine {
    var invokes = 0
    var lastInput: ByteArray? = null

    override fun run(input: ByteArray, output: ByteArray) {
        invokes++
        lastInput = input.copyOf()
        answer(input).copyInto(output)
    }

    companion object {
        /** An engine whose tensors are exactly the sidecar's. */
        fun matching(spec: ModelSpec, answer: (ByteArray) -> ByteArray) = FakeEngine(spec.input, spec.output, answer)
    }
}

/** One row of a golden folder's cases.tsv (written by kvasir_tf.golden.write_golden). */
data class GoldenCase(
    val dir: File, val name: String, val format: String, val height: Int, val width: Int, val size: Int,
    val scale: Float, val zeroPoint: Int, val top1: Int, val numClasses: Int,
    val outputScale: Float, val outputZeroPoint: Int,
) {
    fun bytes(ext: String): ByteArray = File(dir, "$name.$ext").readBytes()
    fun hasOutput(): Boolean = File(dir, "$name.output").isFile
}

object Golden {
    /** The golden root from -Dkvasir.golden (set by tests/test_android_core.py), or null. */
    fun root(): File? = System.getProperty("kvasir.golden")?.let(::File)

    /** Where the tests write what the Python side checks (-Dkvasir.report), or null. */
    fun reportDir(): File? = System.getProperty("kvasir.report")?.let { File(it).apply { mkdirs() } }

    fun folders(root: File): List<File> =
        root.listFiles { f -> File(f, "cases.tsv").isFile }.orEmpty().sortedBy { it.name }

    fun cases(dir: File): List<GoldenCase> {
        val lines = File(dir, "cases.tsv").readLines().filter { it.isNotBlank() }
        val header = lines.first().split('\t')
        return lines.drop(1).map { line ->
            val v = header.zip(line.split('\t')).toMap()
            GoldenCase(
                dir, v.getValue("name"), v.getValue("format"), v.getValue("height").toInt(), v.getValue("width").toInt(),
                v.getValue("size").toInt(), v.getValue("scale").toDouble().toFloat(), v.getValue("zero_point").toInt(),
                v.getValue("top1").toInt(), v.getValue("num_classes").toInt(),
                v.getValue("output_scale").toDouble().toFloat(), v.getValue("output_zero_point").toInt(),
            )
        }
    }
}
