package io.kvasirtf.core

import kotlin.math.roundToInt

/** A rectangle of pixels: [left, left + width) x [top, top + height), as android.graphics.Rect. */
data class PixelRect(val left: Int, val top: Int, val width: Int, val height: Int) {
    val right: Int get() = left + width
    val bottom: Int get() = top + height
}

/** A rectangle on the screen, in view pixels (fractions allowed). */
data class ViewRect(val left: Double, val top: Double, val width: Double, val height: Double)

/**
 * Classified = shown. The camera frame is 4:3; the preview view has its own aspect ratio and
 * shows the frame FILL_CENTER, so without care the model sees another part of the scene than
 * the screen. The app binds preview and analysis in one CameraX UseCaseGroup with the preview
 * view's ViewPort: each analysis frame then carries, as its crop rect, the part of the frame the
 * preview shows ([viewportCrop] models that rect). The classifier takes the centred square of
 * that crop ([analysedSquare]), and the app draws [overlaySquare], the centred square of the
 * view, over the preview: the same part of the scene.
 */
object FrameGeometry {
    /**
     * The crop a FILL_CENTER ViewPort of [viewWidth] x [viewHeight] gives in an upright
     * [frameWidth] x [frameHeight] frame: the largest rectangle of the view's aspect ratio,
     * centred (CameraX ViewPorts.calculateViewPortRects).
     */
    fun viewportCrop(frameWidth: Int, frameHeight: Int, viewWidth: Int, viewHeight: Int): PixelRect {
        require(frameWidth > 0 && frameHeight > 0 && viewWidth > 0 && viewHeight > 0) { "empty frame or view" }
        return if (frameWidth.toLong() * viewHeight > viewWidth.toLong() * frameHeight) {      // frame wider: cut the sides
            val w = (frameHeight.toDouble() * viewWidth / viewHeight).roundToInt().coerceIn(1, frameWidth)
            PixelRect((frameWidth - w) / 2, 0, w, frameHeight)
        } else {                                                                             // frame taller: cut top and bottom
            val h = (frameWidth.toDouble() * viewHeight / viewWidth).roundToInt().coerceIn(1, frameHeight)
            PixelRect(0, (frameHeight - h) / 2, frameWidth, h)
        }
    }

    /** The square of [crop] the classifier sees: its centred square (DevicePreprocessing.cropBox). */
    fun analysedSquare(crop: PixelRect): PixelRect {
        val (y0, x0, s) = DevicePreprocessing.cropBox(crop.height, crop.width).let { Triple(it[0], it[1], it[2]) }
        return PixelRect(crop.left + x0, crop.top + y0, s, s)
    }

    /** The square drawn over the preview: the centred square of the view. */
    fun overlaySquare(viewWidth: Int, viewHeight: Int): ViewRect {
        val s = minOf(viewWidth, viewHeight).toDouble()
        return ViewRect((viewWidth - s) / 2, (viewHeight - s) / 2, s, s)
    }

    /**
     * Where [r] (frame pixels) appears on a [viewWidth] x [viewHeight] view that shows [shown]
     * scaled to fill it, centred (PreviewView's FILL_CENTER).
     */
    fun onView(r: PixelRect, shown: PixelRect, viewWidth: Int, viewHeight: Int): ViewRect {
        val k = maxOf(viewWidth.toDouble() / shown.width, viewHeight.toDouble() / shown.height)
        val dx = (viewWidth - shown.width * k) / 2
        val dy = (viewHeight - shown.height * k) / 2
        return ViewRect(dx + (r.left - shown.left) * k, dy + (r.top - shown.top) * k, r.width * k, r.height * k)
    }
}
