package io.kvasirtf.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File
import java.io.RandomAccessFile
import java.nio.ByteBuffer
import java.nio.channels.FileChannel

/**
 * The screen states and the classifier on the real files kvasir-android-assets installs
 * (a tiny int8 model converted by kvasir_tf, its sidecar and labels.txt), with a fake
 * interpreter that answers with the golden output tensor.
 */
class ModelFilesTest {
    private val dir: File by lazy {
        val root = Golden.root()
        assumeTrue("no -Dkvasir.golden (set by tests/test_android_core.py)", root != null)
        val d = File(root, "model")
        assumeTrue("no model folder in $root", File(d, ModelSpec.MODEL_NAME).isFile)
        d
    }
    private val modelBytes by lazy { File(dir, ModelSpec.MODEL_NAME).readBytes() }
    private val model: ByteBuffer by lazy { ByteBuffer.wrap(modelBytes) }
    private val sidecar by lazy { File(dir, ModelSpec.SIDECAR_NAME).readText() }
    private val labels by lazy { File(dir, ModelSpec.LABELS_NAME).readText() }

    private fun ready(): ModelState.Ready {
        val state = ModelCheck.check(model, sidecar, labels)
        assertTrue("expected Ready, got ${state.message}", state is ModelState.Ready)
        return state as ModelState.Ready
    }

    @Test
    fun sidecarIsReadNotHardCoded() {
        val r = ready()
        val case = Golden.cases(dir).first()
        assertEquals(case.size, r.spec.imageSize)
        assertEquals(case.scale, r.spec.inputQuant.scale, 0f)
        assertEquals(case.zeroPoint, r.spec.inputQuant.zeroPoint)
        assertEquals(case.outputScale, r.spec.output.scale!!.toFloat(), 0f)
        assertEquals(case.outputZeroPoint, r.spec.output.zeroPoint)
        assertEquals(case.numClasses, r.labels.size)
        assertEquals(r.spec.classNames, r.labels)
        assertEquals(ModelCheck.sha256Hex(model), r.spec.sha256)
    }

    @Test
    fun aMemoryMappedModelIsCheckedInPlace() {
        // As the app maps assets/model.tflite (FileChannel.map of the uncompressed asset).
        RandomAccessFile(File(dir, ModelSpec.MODEL_NAME), "r").use { f ->
            val mapped = f.channel.map(FileChannel.MapMode.READ_ONLY, 0, f.length())
            val s = ModelCheck.check(mapped, sidecar, labels)
            assertTrue("got ${s.message}", s is ModelState.Ready)
            assertEquals(ModelCheck.sha256Hex(ByteBuffer.wrap(modelBytes)), ModelCheck.sha256Hex(mapped))
            assertEquals("the interpreter reads the buffer from its start", 0, mapped.position())
            assertEquals(modelBytes.size, mapped.remaining())
        }
    }

    @Test
    fun classifierRunsTheDevicePathAndNamesTheTop1() {
        val r = ready()
        for (c in Golden.cases(dir).filter { it.format == "rgb888" && it.hasOutput() }) {
            val want = c.bytes("input")
            val engine = FakeEngine.matching(r.spec) { inp ->
                assertArrayEquals("${c.name}: the classifier fed another input", want, inp)
                c.bytes("output")
            }
            var t = 0L
            val clf = Classifier(r.spec, r.labels, engine, clock = { t += 1_000; t })
            val result = clf.classify(DevicePreprocessing.rgb888ToArgb(c.bytes("frame"), c.width, c.height), c.width, c.height)
            assertEquals(1, engine.invokes)
            assertEquals(c.top1, result.top[0].index)
            assertEquals(r.labels[c.top1], result.top[0].label)
            assertEquals(minOf(3, c.numClasses), result.top.size)
            assertTrue(result.top.zipWithNext().all { (a, b) -> a.confidence >= b.confidence })
            assertEquals(1_000L, result.preprocessNanos)
            assertEquals(1_000L, result.inferenceNanos)
        }
    }

    @Test
    fun missingFilesAreNamed() {
        val s = ModelCheck.check(null, sidecar, null)
        assertEquals(ModelState.Missing(listOf(ModelSpec.MODEL_NAME, ModelSpec.LABELS_NAME)), s)
        // The console script setup.cfg installs, not a script under tools/.
        assertTrue(s.message, s.message.contains("From the kvasir_tf repository: kvasir-android-assets runs/NAME,"))
        assertFalse(s.message, s.message.contains(".py"))
    }

    @Test
    fun aModelTheSidecarDoesNotDescribeIsRefused() {
        val tampered = ByteBuffer.wrap(modelBytes.copyOf().also { it[it.size / 2] = (it[it.size / 2] + 1).toByte() })
        val s = ModelCheck.check(tampered, sidecar, labels)
        assertTrue("got ${s.message}", s is ModelState.ShaMismatch)
        assertEquals(ready().spec.sha256, (s as ModelState.ShaMismatch).expected)
        assertEquals(ModelCheck.sha256Hex(tampered), s.actual)
    }

    @Test
    fun labelsInAnotherOrderAreRefused() {
        val r = ready()
        assumeTrue(r.labels.size > 1)
        val s = ModelCheck.check(model, sidecar, r.labels.reversed().joinToString("\n"))
        assertTrue("got ${s.message}", s is ModelState.Invalid && s.reason.contains("labels.txt"))
    }

    @Test
    fun aFloatSidecarIsRefusedWithTheFix() {
        val floatSidecar = sidecar.replaceFirst(Regex("\"dtype\":\\s*\"int8\""), "\"dtype\": \"float32\"")
        val s = ModelCheck.check(model, floatSidecar, labels)
        assertTrue("got ${s.message}", s is ModelState.Invalid && s.reason.contains("--int8"))
    }

    @Test
    fun anInterpreterWhoseInputDiffersFromTheSidecarIsRefused() {
        val r = ready()
        val zp = r.spec.input.copy(zeroPoint = r.spec.input.zeroPoint!! + 1)
        val shape = r.spec.input.copy(shape = listOf(1, r.spec.imageSize + 1, r.spec.imageSize + 1, 3))
        for (bad in listOf(zp, shape)) {
            val engine = FakeEngine(bad, r.spec.output, { ByteArray(0) })
            val s = ModelCheck.checkEngine(r, engine)
            assertTrue("got ${s.message}", s is ModelState.InputMismatch && s.reason.startsWith("input"))
            try {
                Classifier(r.spec, r.labels, engine)
                throw AssertionError("Classifier accepted a mismatched interpreter")
            } catch (e: ModelError) {
                assertTrue(e.message!!.contains("sidecar"))
            }
        }
        assertEquals(r, ModelCheck.checkEngine(r, FakeEngine.matching(r.spec) { ByteArray(0) }))
    }
}
