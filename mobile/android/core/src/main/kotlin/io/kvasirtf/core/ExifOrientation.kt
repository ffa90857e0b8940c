package io.kvasirtf.core

/**
 * The EXIF orientation tag (1-8) as the transform that makes the stored pixels upright: mirror
 * left-right first when [flipped], then rotate clockwise by [rotationDegrees]. ImageDecoder
 * applies it itself on API 28+; on API 24-27 BitmapFactory ignores it, so the app reads the tag
 * with androidx.exifinterface and applies [apply]. Same split as ExifInterface's
 * getRotationDegrees() and isFlipped().
 */
data class ExifOrientation(val rotationDegrees: Int, val flipped: Boolean) {
    val isIdentity: Boolean get() = rotationDegrees == 0 && !flipped

    /** Width and height after the transform. */
    fun outputSize(width: Int, height: Int): Pair<Int, Int> =
        if (rotationDegrees % 180 == 0) width to height else height to width

    /** The upright ARGB pixels of a stored [width] x [height] image (row-major). */
    fun apply(argb: IntArray, width: Int, height: Int): IntArray {
        require(argb.size >= width * height) { "image has ${argb.size} pixels, not ${width}x$height" }
        if (isIdentity) return argb
        val (ow, _) = outputSize(width, height)
        val out = IntArray(width * height)
        for (y in 0 until height) {
            for (x in 0 until width) {
                val fx = if (flipped) width - 1 - x else x          // mirrored source column
                val (ox, oy) = when (rotationDegrees) {
                    90 -> (height - 1 - y) to fx
                    180 -> (width - 1 - fx) to (height - 1 - y)
                    270 -> y to (width - 1 - fx)
                    else -> fx to y
                }
                out[oy * ow + ox] = argb[y * width + x]
            }
        }
        return out
    }

    companion object {
        val NORMAL = ExifOrientation(0, false)

        /** Tag value -> transform; an absent, 0 (undefined) or unknown value is upright. */
        fun fromTag(tag: Int): ExifOrientation = when (tag) {
            2 -> ExifOrientation(0, true)     // FLIP_HORIZONTAL
            3 -> ExifOrientation(180, false)  // ROTATE_180
            4 -> ExifOrientation(180, true)   // FLIP_VERTICAL
            5 -> ExifOrientation(270, true)   // TRANSPOSE
            6 -> ExifOrientation(90, false)   // ROTATE_90
            7 -> ExifOrientation(90, true)    // TRANSVERSE
            8 -> ExifOrientation(270, false)  // ROTATE_270
            else -> NORMAL
        }
    }
}
