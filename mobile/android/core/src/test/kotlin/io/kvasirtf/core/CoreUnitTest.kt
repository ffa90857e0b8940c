package io.kvasirtf.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** Hand-computed cases for the pieces the golden vectors exercise only in bulk. */
class CoreUnitTest {
    @Test
    fun quantizeRoundsHalfUpNotHalfToEven() {
        val q = InputQuant(2f, 0)
        // p / 2 = 2.5 -> 3 (numpy's round would give 2), 0.5 -> 1, 1.5 -> 2
        assertEquals(3, q[5].toInt())
        assertEquals(1, q[1].toInt())
        assertEquals(2, q[3].toInt())
        val usual = InputQuant(1f, -128)
        for (p in 0..255) assertEquals((p - 128).toByte(), usual[p])       // q = p - 128 = (int8)(p ^ 0x80)
        val clamps = InputQuant(0.5f, 10)
        assertEquals(127, clamps[255].toInt())
        assertEquals(10, clamps[0].toInt())
    }

    @Test
    fun boxBoundsCoverTheSourceAndRepeatWhenUpsampling() {
        val (s, e) = DevicePreprocessing.boxBounds(10, 3)
        assertArrayEquals(intArrayOf(0, 3, 6), s)
        assertArrayEquals(intArrayOf(3, 6, 10), e)
        val (us, ue) = DevicePreprocessing.boxBounds(2, 5)
        assertArrayEquals(intArrayOf(0, 0, 0, 1, 1), us)
        assertArrayEquals(intArrayOf(1, 1, 1, 2, 2), ue)
        assertArrayEquals(intArrayOf(1, 0, 3), DevicePreprocessing.cropBox(5, 3))
        assertArrayEquals(intArrayOf(0, 2, 3), DevicePreprocessing.cropBox(3, 8))
    }

    @Test
    fun cropAndBoxMeanByHand() {
        // 3 wide x 2 high: the centred square is columns 0..1 ((3 - 2) / 2 = 0); one output pixel.
        val argb = intArrayOf(0xFF0A0001.toInt(), 0xFF0B0002.toInt(), 0xFFFFFFFF.toInt(),
                              0xFF0C0001.toInt(), 0xFF0C0003.toInt(), 0xFFFFFFFF.toInt())
        val px = DevicePreprocessing.argbToPixels(argb, 3, 2, 1)
        // R (10+11+12+12)=45 -> (45+2)/4 = 11; G 0; B (1+2+1+3)=7 -> (7+2)/4 = 2 (the half rounds up)
        assertArrayEquals(intArrayOf(11, 0, 2), px)
        val q = DevicePreprocessing.argbToInput(argb, 3, 2, 1, InputQuant(1f, -128))
        assertArrayEquals(byteArrayOf((11 - 128).toByte(), -128, (2 - 128).toByte()), q)
    }

    @Test
    fun topKBreaksTiesAtTheLowestIndex() {
        assertArrayEquals(intArrayOf(1, 3, 0), Postprocess.topK(floatArrayOf(0.1f, 0.4f, 0.1f, 0.4f), 3))
        assertArrayEquals(intArrayOf(0, 1), Postprocess.topK(floatArrayOf(0f, 0f), 5))
        val probs = Postprocess.dequantize(byteArrayOf(-128, 0, 127), 1f / 256f, -128)
        assertArrayEquals(floatArrayOf(0f, 0.5f, 255f / 256f), probs, 0f)
    }

    @Test
    fun sidecarJsonIsParsedAndCheckedWithTheFix() {
        val json = """{"tflite": "m\u00e9.tflite", "mode": "int8", "sha256": "${"ab".repeat(32)}", "image_size": 2,
            "input": {"shape": [1, 2, 2, 3], "dtype": "int8", "scale": 1.0, "zero_point": -128},
            "output": {"shape": [1, 2], "dtype": "int8", "scale": 0.00390625, "zero_point": -128},
            "class_names": ["a \"b\"", "c"], "calibration": null, "ok": true}"""
        val spec = ModelSpec.parse(json)
        assertEquals("mé.tflite", spec.tflite)
        assertEquals(listOf("a \"b\"", "c"), spec.classNames)
        assertEquals(-128, spec.inputQuant.zeroPoint)
        for ((edit, fix) in listOf(
            json.replace("\"image_size\": 2", "\"image_size\": 3") to "input shape",
            json.replace("[1, 2]", "[1, 3]") to "class scores",
            json.replace("\"scale\": 1.0", "\"scale\": null") to "--int8",
            json.replaceFirst("{", "[") to "JSON",
        )) {
            try {
                ModelSpec.parse(edit)
                throw AssertionError("accepted a bad sidecar ($fix)")
            } catch (e: ModelError) {
                assertTrue("'${e.message}' should mention $fix", e.message!!.contains(fix))
            }
        }
        assertEquals(listOf("x", "y"), parseLabels("x\r\ny\n\n"))
    }

    @Test
    fun rollingMedianKeepsTheRecentFrames() {
        val m = RollingMedian(3)
        assertNull(m.median())
        listOf(10L, 1000L, 20L, 30L).forEach(m::add)   // 10 drops out: window 1000, 20, 30
        assertEquals(3, m.count)
        assertEquals(30L, m.median())
        m.add(5L)                                      // window 20, 30, 5
        assertEquals(20L, m.median())
    }
}
