package io.kvasirtf.core

import kotlin.math.roundToInt

/**
 * How large a picked image is decoded: big enough for the screen and the model, never the
 * full resolution of a 12-50 MP photo (one ARGB copy of which is 48-200 MB). The classifier
 * only box-filters the centred square down to the model's size, so a short side of
 * [minShortSide] pixels loses nothing it would see.
 */
object DecodeSize {
    /** The short side to decode to: the screen's short side, and at least the model's input size. */
    fun minShortSide(modelSize: Int, screenShortSide: Int): Int = maxOf(modelSize, screenShortSide, 1)

    /**
     * BitmapFactory.Options.inSampleSize (API 24-27): the largest power of two that keeps the
     * short side >= [minShortSide] (BitmapFactory rounds other values down to a power of two).
     */
    fun sampleSize(width: Int, height: Int, minShortSide: Int): Int {
        require(width > 0 && height > 0) { "image size ${width}x$height" }
        val short = minOf(width, height)
        var s = 1
        while (short / (s * 2) >= minShortSide) s *= 2
        return s
    }

    /**
     * ImageDecoder.setTargetSize (API 28+): the image scaled so its short side is [minShortSide],
     * aspect kept; the image's own size when it is already smaller (never upscaled).
     */
    fun targetSize(width: Int, height: Int, minShortSide: Int): Pair<Int, Int> {
        require(width > 0 && height > 0) { "image size ${width}x$height" }
        val short = minOf(width, height)
        if (short <= minShortSide) return width to height
        val f = minShortSide.toDouble() / short
        return maxOf(1, (width * f).roundToInt()) to maxOf(1, (height * f).roundToInt())
    }
}
