package io.kvasirtf.core

import java.nio.ByteBuffer

/**
 * Camera frames (CameraX ImageAnalysis OUTPUT_IMAGE_FORMAT_RGBA_8888: one plane, 4 bytes per
 * pixel R G B A, rows [rowStride] bytes apart, possibly padded) -> ARGB ints of one rectangle,
 * into buffers reused from frame to frame: no Bitmap and no full-frame array per frame. Not
 * thread-safe: one reader per analysis thread.
 */
class RgbaFrameReader {
    private var row = ByteArray(0)
    private var argb = IntArray(0)

    /**
     * The ARGB pixels of [rect] (row-major, rect.width per row) in a buffer this reader owns and
     * overwrites on the next call; it may be longer than rect.width * rect.height.
     */
    fun read(plane: ByteBuffer, rowStride: Int, pixelStride: Int, rect: PixelRect): IntArray {
        require(pixelStride == BYTES_PER_PIXEL) { "RGBA_8888 has 4 bytes per pixel, the plane has $pixelStride" }
        require(rect.left >= 0 && rect.top >= 0 && rect.width > 0 && rect.height > 0) { "bad rectangle $rect" }
        require(rowStride >= rect.right * BYTES_PER_PIXEL) { "row stride $rowStride is shorter than $rect" }
        val need = rect.width * rect.height
        if (argb.size < need) argb = IntArray(need)
        val rowBytes = rect.width * BYTES_PER_PIXEL
        if (row.size < rowBytes) row = ByteArray(rowBytes)
        val src = plane.duplicate()                          // absolute reads; the caller's position is kept
        var o = 0
        for (y in rect.top until rect.bottom) {
            src.position(y * rowStride + rect.left * BYTES_PER_PIXEL)
            src.get(row, 0, rowBytes)
            var k = 0
            repeat(rect.width) {
                argb[o++] = (0xFF shl 24) or ((row[k].toInt() and 0xFF) shl 16) or
                    ((row[k + 1].toInt() and 0xFF) shl 8) or (row[k + 2].toInt() and 0xFF)
                k += BYTES_PER_PIXEL
            }
        }
        return argb
    }

    companion object {
        const val BYTES_PER_PIXEL = 4
    }
}
