package io.kvasirtf.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** The picked image's decode size and EXIF orientation rules. */
class PickedImageTest {
    @Test
    fun sampleSizeIsThePowerOfTwoThatKeepsTheShortSide() {
        assertEquals(2, DecodeSize.sampleSize(4000, 3000, 1080))    // 2000x1500; 4 would give 750 px
        assertEquals(2, DecodeSize.sampleSize(3000, 4000, 1080))    // portrait: same short side
        assertEquals(4, DecodeSize.sampleSize(8160, 6120, 1080))    // 50 MP -> 2040x1530
        assertEquals(4, DecodeSize.sampleSize(6000, 4320, 1080))    // exactly 1080 is enough
        assertEquals(1, DecodeSize.sampleSize(1920, 1072, 1080))    // already small: full size
        assertEquals(1, DecodeSize.sampleSize(61, 45, 96))
        // The decoded ARGB bitmap of a 12 MP photo: 12 MB instead of 48 MB.
        val s = DecodeSize.sampleSize(4000, 3000, 1080)
        assertEquals(12_000_000L, 4L * (4000 / s) * (3000 / s))
    }

    @Test
    fun targetSizeScalesTheShortSideAndNeverUpscales() {
        assertEquals(1440 to 1080, DecodeSize.targetSize(4000, 3000, 1080))
        assertEquals(1080 to 1440, DecodeSize.targetSize(3000, 4000, 1080))
        assertEquals(1934 to 1080, DecodeSize.targetSize(1920 * 2, 1072 * 2, 1080))   // 1934.3: aspect kept, rounded
        assertEquals(800 to 600, DecodeSize.targetSize(800, 600, 1080))
        assertEquals(1080, DecodeSize.minShortSide(modelSize = 96, screenShortSide = 1080))
        assertEquals(224, DecodeSize.minShortSide(modelSize = 224, screenShortSide = 0))   // view not laid out
    }

    /**
     * Each tag against the TIFF 6.0 / EXIF definition ("the 0th row represents the visual ...
     * side, the 0th column the visual ... side"): a stored image built from that sentence must
     * come out as the displayed one.
     */
    @Test
    fun everyExifOrientationComesOutUpright() {
        val w = 3
        val h = 2
        val shown = IntArray(w * h) { it + 1 }
        // (tag, stored width, displayed (x, y) of stored (row r, column c))
        val cases = listOf<Triple<Int, Int, (Int, Int) -> Pair<Int, Int>>>(
            Triple(1, w) { r, c -> c to r },                          // top, left
            Triple(2, w) { r, c -> (w - 1 - c) to r },                // top, right
            Triple(3, w) { r, c -> (w - 1 - c) to (h - 1 - r) },      // bottom, right
            Triple(4, w) { r, c -> c to (h - 1 - r) },                // bottom, left
            Triple(5, h) { r, c -> r to c },                          // left, top
            Triple(6, h) { r, c -> (w - 1 - r) to c },                // right, top
            Triple(7, h) { r, c -> (w - 1 - r) to (h - 1 - c) },      // right, bottom
            Triple(8, h) { r, c -> r to (h - 1 - c) },                // left, bottom
        )
        for ((tag, sw, displayed) in cases) {
            val sh = w * h / sw
            val stored = IntArray(w * h)
            for (r in 0 until sh) for (c in 0 until sw) {
                val (x, y) = displayed(r, c)
                stored[r * sw + c] = shown[y * w + x]
            }
            val o = ExifOrientation.fromTag(tag)
            assertEquals("tag $tag size", w to h, o.outputSize(sw, sh))
            assertArrayEquals("tag $tag", shown, o.apply(stored, sw, sh))
        }
        assertEquals(ExifOrientation.NORMAL, ExifOrientation.fromTag(0))   // undefined: as stored
        assertTrue(ExifOrientation.fromTag(9).isIdentity)
    }

    @Test
    fun aRotatedPhotoIsClassifiedUpright() {
        // A 4x2 stored frame, tag 6 (the phone was held upright): the classifier must see the
        // left half of the upright 2x4 image on top, as ImageDecoder would give it on API 28+.
        val stored = intArrayOf(1, 2, 3, 4, 5, 6, 7, 8)
        val upright = ExifOrientation.fromTag(6).apply(stored, 4, 2)
        assertArrayEquals(intArrayOf(5, 1, 6, 2, 7, 3, 8, 4), upright)
    }
}
