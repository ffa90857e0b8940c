package io.kvasirtf.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.ByteBuffer
import kotlin.math.abs
import kotlin.random.Random

/** Classified = shown: the viewport crop, the analysed square, the overlay, the frame reader. */
class FrameGeometryTest {
    // (frame w, h) upright as the analyzer gets it, (view w, h) of the preview on screen.
    private val setups = listOf(
        intArrayOf(480, 640, 1080, 1500),    // portrait phone, preview slightly narrower than 3:4
        intArrayOf(480, 640, 1080, 800),     // portrait frame, wide view (split screen)
        intArrayOf(640, 480, 2200, 900),     // landscape phone
        intArrayOf(1080, 1440, 1080, 1080),  // square view
        intArrayOf(640, 480, 640, 480),      // view of the frame's own aspect
    )

    @Test
    fun viewportCropIsTheCentredRectOfTheViewsAspect() {
        assertEquals(PixelRect(9, 0, 461, 640), FrameGeometry.viewportCrop(480, 640, 1080, 1500))
        assertEquals(PixelRect(0, 142, 480, 356), FrameGeometry.viewportCrop(480, 640, 1080, 800))
        assertEquals(PixelRect(80, 0, 480, 480), FrameGeometry.viewportCrop(640, 480, 1080, 1080))
        assertEquals(PixelRect(0, 0, 640, 480), FrameGeometry.viewportCrop(640, 480, 1280, 960))
        assertEquals(PixelRect(62, 142, 356, 356), FrameGeometry.analysedSquare(PixelRect(0, 142, 480, 356)))
    }

    @Test
    fun theAnalysedSquareIsTheSquareDrawnOverThePreview() {
        for ((fw, fh, vw, vh) in setups) {
            val crop = FrameGeometry.viewportCrop(fw, fh, vw, vh)
            val onScreen = FrameGeometry.onView(FrameGeometry.analysedSquare(crop), crop, vw, vh)
            val overlay = FrameGeometry.overlaySquare(vw, vh)
            val onePixel = maxOf(vw.toDouble() / crop.width, vh.toDouble() / crop.height) + 0.5
            for ((got, want) in listOf(onScreen.left to overlay.left, onScreen.top to overlay.top,
                                       onScreen.width to overlay.width, onScreen.height to overlay.height)) {
                assertTrue("${fw}x$fh on ${vw}x$vh: $onScreen vs overlay $overlay", abs(got - want) <= onePixel)
            }
        }
    }

    @Test
    fun withoutTheViewportTheModelSawAnotherPartOfTheScene() {
        // The old analyzer: centred square of the whole frame, while the preview shows FILL_CENTER.
        val (fw, fh, vw, vh) = setups[1]
        val full = PixelRect(0, 0, fw, fh)
        val old = FrameGeometry.onView(FrameGeometry.analysedSquare(full), full, vw, vh)
        val overlay = FrameGeometry.overlaySquare(vw, vh)
        assertEquals(1080.0, old.width, 1e-9)      // wider than the 800 px the screen shows of it
        assertEquals(800.0, overlay.width, 1e-9)
        assertTrue(abs(old.top - overlay.top) > 100)
    }

    @Test
    fun theReaderGivesTheClassifierExactlyTheViewportSquare() {
        val rnd = Random(7)
        for ((fw, fh, vw, vh) in setups) {
            val stride = fw * 4 + 12                                    // padded rows, as some HALs give
            val plane = ByteBuffer.wrap(ByteArray(stride * fh).also { rnd.nextBytes(it) })
            val crop = FrameGeometry.viewportCrop(fw, fh, vw, vh)
            val square = FrameGeometry.analysedSquare(crop)
            val reader = RgbaFrameReader()
            val sq = reader.read(plane, stride, 4, square)
            val size = 32
            val q = InputQuant(1f, -128)
            val fromReader = DevicePreprocessing.argbToInput(sq, square.width, square.height, size, q)
            // The same crop read pixel by pixel, then the device path's own centred square.
            val cropArgb = IntArray(crop.width * crop.height) { i ->
                val k = (crop.top + i / crop.width) * stride + (crop.left + i % crop.width) * 4
                val b = plane.array()
                (0xFF shl 24) or ((b[k].toInt() and 0xFF) shl 16) or ((b[k + 1].toInt() and 0xFF) shl 8) or (b[k + 2].toInt() and 0xFF)
            }
            assertArrayEquals("${fw}x$fh on ${vw}x$vh",
                DevicePreprocessing.argbToInput(cropArgb, crop.width, crop.height, size, q), fromReader)
            if (crop != PixelRect(0, 0, fw, fh) && minOf(crop.width, crop.height) != minOf(fw, fh)) {
                val whole = reader.read(plane, stride, 4, FrameGeometry.analysedSquare(PixelRect(0, 0, fw, fh)))
                val s = minOf(fw, fh)
                assertFalse(DevicePreprocessing.argbToInput(whole, s, s, size, q).contentEquals(fromReader))
            }
            assertEquals("the caller's buffer position is kept", 0, plane.position())
        }
    }

    @Test
    fun theReaderSkipsRowPaddingAndReusesItsBuffer() {
        // 3x2 RGBA frame, rows of 16 bytes (4 of padding, filled with 0x77).
        val bytes = ByteArray(32) { 0x77 }
        for (y in 0 until 2) for (x in 0 until 3) {
            val k = y * 16 + x * 4
            bytes[k] = (10 * y + x).toByte(); bytes[k + 1] = 0x80.toByte(); bytes[k + 2] = 0xFF.toByte(); bytes[k + 3] = 0x11
        }
        val reader = RgbaFrameReader()
        val rect = PixelRect(1, 0, 2, 2)
        val got = reader.read(ByteBuffer.wrap(bytes), 16, 4, rect)
        assertArrayEquals(intArrayOf(0xFF0180FF.toInt(), 0xFF0280FF.toInt(), 0xFF0B80FF.toInt(), 0xFF0C80FF.toInt()),
            got.copyOf(4))
        val again = reader.read(ByteBuffer.wrap(bytes), 16, 4, PixelRect(0, 0, 2, 2))
        assertSame("one buffer for every frame", got, again)
        assertArrayEquals(intArrayOf(0xFF0080FF.toInt(), 0xFF0180FF.toInt(), 0xFF0A80FF.toInt(), 0xFF0B80FF.toInt()),
            again.copyOf(4))
    }
}
