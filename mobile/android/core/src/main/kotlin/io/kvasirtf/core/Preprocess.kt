package io.kvasirtf.core

import kotlin.math.floor

/**
 * The int8 input map q = clamp(floor(p / scale + 0.5) + zeroPoint, -128, 127): round half up,
 * exactly as kvasir_tf.device_preprocessing.quantize (float32 division, like numpy's float32).
 * Kotlin's Math.round would agree here, numpy's round (half to even) would not; the golden
 * vectors pin the rule. Pixels are 0..255, so the map is a 256-entry table.
 */
class InputQuant(val scale: Float, val zeroPoint: Int) {
    init {
        require(scale > 0f) { "input scale $scale must be positive" }
    }

    private val table = ByteArray(256) { p -> quantize(p) }

    fun quantize(pixel: Int): Byte {
        val q = floor(pixel.toFloat() / scale + 0.5f).toLong() + zeroPoint
        return q.coerceIn(-128L, 127L).toInt().toByte()
    }

    operator fun get(pixel: Int): Byte = table[pixel]
}

/**
 * The device's frame -> model input path, defined once in kvasir_tf/device_preprocessing.py
 * and implemented here for ARGB pixels (Android's Bitmap.getPixels): unpack to RGB888, crop
 * the centred square, integer box resize, quantize. Integers only, so it matches the Python
 * reference (and the firmware) bit for bit.
 */
object DevicePreprocessing {
    /** (y0, x0, side) of the centred square, as center_square in the training pipeline. */
    fun cropBox(height: Int, width: Int): IntArray {
        val s = minOf(height, width)
        return intArrayOf((height - s) / 2, (width - s) / 2, s)
    }

    /** Source [start, end) of output index i: [i*src/dst, max((i+1)*src/dst, start+1)). */
    fun boxBounds(src: Int, dst: Int): Pair<IntArray, IntArray> {
        val start = IntArray(dst) { ((it.toLong() * src) / dst).toInt() }
        val end = IntArray(dst) { maxOf((((it + 1).toLong() * src) / dst).toInt(), start[it] + 1) }
        return start to end
    }

    /**
     * ARGB pixels [height * width] -> RGB888 [size, size, 3] (as Ints 0..255, row-major), written
     * into [out] when given (the classifier reuses one buffer for every frame).
     */
    fun argbToPixels(
        argb: IntArray, width: Int, height: Int, size: Int, out: IntArray = IntArray(size * size * 3),
    ): IntArray {
        require(width > 0 && height > 0) { "empty frame ${width}x$height" }
        require(argb.size >= width * height) { "frame has ${argb.size} pixels, not ${width}x$height" }
        require(size >= 1) { "model input size $size must be >= 1" }
        require(out.size == size * size * 3) { "pixel buffer holds ${out.size} values, not $size x $size x 3" }
        val (y0, x0, s) = cropBox(height, width).let { Triple(it[0], it[1], it[2]) }
        val (ys, ye) = boxBounds(s, size)
        val (xs, xe) = boxBounds(s, size)
        var o = 0
        for (i in 0 until size) {
            for (j in 0 until size) {
                var r = 0L; var g = 0L; var b = 0L
                for (y in ys[i] until ye[i]) {
                    val row = (y0 + y) * width + x0
                    for (x in xs[j] until xe[j]) {
                        val c = argb[row + x]
                        r += (c ushr 16) and 0xFF; g += (c ushr 8) and 0xFF; b += c and 0xFF
                    }
                }
                val n = (ye[i] - ys[i]).toLong() * (xe[j] - xs[j])
                out[o++] = ((r + n / 2) / n).toInt()
                out[o++] = ((g + n / 2) / n).toInt()
                out[o++] = ((b + n / 2) / n).toInt()
            }
        }
        return out
    }

    /** The int8 model input [size * size * 3] for one ARGB frame; writes into [out] (and [pixels]) when given. */
    fun argbToInput(
        argb: IntArray, width: Int, height: Int, size: Int, quant: InputQuant,
        out: ByteArray = ByteArray(size * size * 3), pixels: IntArray = IntArray(size * size * 3),
    ): ByteArray {
        require(out.size == size * size * 3) { "input buffer holds ${out.size} bytes, not $size x $size x 3" }
        argbToPixels(argb, width, height, size, pixels)
        for (k in pixels.indices) out[k] = quant[pixels[k]]
        return out
    }

    /** RGB888 bytes (R G B R G B ...) -> opaque ARGB ints, as Bitmap.getPixels would give them. */
    fun rgb888ToArgb(rgb: ByteArray, width: Int, height: Int): IntArray {
        require(rgb.size == width * height * 3) { "rgb888 frame has ${rgb.size} bytes, not ${width}x${height}x3" }
        return IntArray(width * height) {
            val k = 3 * it
            (0xFF shl 24) or ((rgb[k].toInt() and 0xFF) shl 16) or ((rgb[k + 1].toInt() and 0xFF) shl 8) or
                (rgb[k + 2].toInt() and 0xFF)
        }
    }
}
