package io.kvasirtf.app

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.util.AttributeSet
import android.view.View
import io.kvasirtf.core.FrameGeometry

/**
 * The square the model classifies, drawn over the camera preview (FrameGeometry.overlaySquare:
 * the centred square of the view, which is the analysed square of the viewport crop).
 */
class AnalysedSquareView @JvmOverloads constructor(context: Context, attrs: AttributeSet? = null) : View(context, attrs) {
    private val paint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        style = Paint.Style.STROKE
        color = Color.WHITE
        strokeWidth = resources.displayMetrics.density * 2
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        if (width == 0 || height == 0) return
        val r = FrameGeometry.overlaySquare(width, height)
        val inset = paint.strokeWidth / 2
        canvas.drawRect((r.left + inset).toFloat(), (r.top + inset).toFloat(),
            (r.left + r.width - inset).toFloat(), (r.top + r.height - inset).toFloat(), paint)
    }
}
