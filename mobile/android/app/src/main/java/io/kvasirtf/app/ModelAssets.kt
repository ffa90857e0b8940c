package io.kvasirtf.app

import android.content.res.AssetManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import io.kvasirtf.core.ModelCheck
import io.kvasirtf.core.ModelSpec
import io.kvasirtf.core.ModelState
import java.io.IOException

/** The files tools/android_assets.py put in app/src/main/assets, read and checked by the core. */
class ModelAssets(private val assets: AssetManager) {
    val modelBytes: ByteArray? = read(ModelSpec.MODEL_NAME)

    /** Missing / Invalid / ShaMismatch / Ready: everything checked before an interpreter exists. */
    val state: ModelState = ModelCheck.check(
        modelBytes,
        read(ModelSpec.SIDECAR_NAME)?.toString(Charsets.UTF_8),
        read(ModelSpec.LABELS_NAME)?.toString(Charsets.UTF_8),
    )

    /** The benchmark's bundled test image (bench_image.jpg/.png), or null when none was installed. */
    fun benchImage(): Pair<String, Bitmap>? {
        val name = assets.list("")?.firstOrNull { it.startsWith("bench_image.") } ?: return null
        val options = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
        val bitmap = assets.open(name).use { BitmapFactory.decodeStream(it, null, options) } ?: return null
        return name to bitmap
    }

    private fun read(name: String): ByteArray? = try {
        assets.open(name).use { it.readBytes() }
    } catch (e: IOException) {
        null
    }
}

/** ARGB ints of a bitmap (hardware bitmaps are copied to ARGB_8888 first). */
fun Bitmap.argbPixels(): IntArray {
    val soft = if (config == Bitmap.Config.ARGB_8888) this else copy(Bitmap.Config.ARGB_8888, false)
    val pixels = IntArray(soft.width * soft.height)
    soft.getPixels(pixels, 0, soft.width, 0, 0, soft.width, soft.height)
    return pixels
}
