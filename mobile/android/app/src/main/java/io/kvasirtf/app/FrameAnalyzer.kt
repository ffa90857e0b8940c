package io.kvasirtf.app

import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import io.kvasirtf.core.FrameGeometry
import io.kvasirtf.core.PixelRect
import io.kvasirtf.core.RgbaFrameReader

/**
 * CameraX frames -> the ARGB pixels of the square the preview overlay marks. Preview and
 * analysis are bound with the preview's ViewPort, so each frame's cropRect is the part of the
 * frame the screen shows; with setOutputImageRotationEnabled(true) CameraX maps that rect into
 * the rotated buffer (ImageAnalysisAbstractAnalyzer.recalculateTransformMatrixAndCropRect).
 * The reader's buffers are reused from frame to frame. Errors go to [onError], never up into
 * CameraX's executor.
 */
class FrameAnalyzer(
    private val onSquare: (argb: IntArray, side: Int) -> Unit,
    private val onError: (Throwable) -> Unit,
) : ImageAnalysis.Analyzer {
    private val reader = RgbaFrameReader()

    override fun analyze(image: ImageProxy) {
        image.use {
            try {
                val crop = it.cropRect
                val square = FrameGeometry.analysedSquare(PixelRect(crop.left, crop.top, crop.width(), crop.height()))
                val plane = it.planes[0]
                onSquare(reader.read(plane.buffer, plane.rowStride, plane.pixelStride, square), square.width)
            } catch (e: Exception) {
                onError(e)
            } catch (e: OutOfMemoryError) {
                onError(e)
            }
        }
    }
}
