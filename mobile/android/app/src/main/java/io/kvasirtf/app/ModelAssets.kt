package io.kvasirtf.app

import android.content.res.AssetManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import io.kvasirtf.core.DevicePreprocessing
import io.kvasirtf.core.ModelCheck
import io.kvasirtf.core.ModelSpec
import io.kvasirtf.core.ModelState
import java.io.FileInputStream
import java.io.IOException
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The files kvasir-android-assets put in app/src/main/assets, read and checked by the core once
 * (the ViewModel keeps this object across rotation). The model is memory-mapped, not copied to
 * the heap: the sha256 check and the Interpreter both read the mapping.
 */
class ModelAssets(private val assets: AssetManager) {
    /** The .tflite, mapped read-only (stored uncompressed: noCompress in app/build.gradle.kts). */
    val model: MappedByteBuffer? = map(ModelSpec.MODEL_NAME)

    val modelSize: Long get() = model?.capacity()?.toLong() ?: 0L

    /** Missing / Invalid / ShaMismatch / Ready: everything checked before an interpreter exists. */
    val state: ModelState = ModelCheck.check(
        model,
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

    /** As LiteRT's FileUtil.loadMappedFile: the asset's byte range in the APK, mapped. */
    private fun map(name: String): MappedByteBuffer? = try {
        assets.openFd(name).use { fd ->
            FileInputStream(fd.fileDescriptor).use { stream ->
                stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
        }
    } catch (e: IOException) {   // FileNotFoundException: no such asset (or stored compressed)
        null
    }

    private fun read(name: String): ByteArray? = try {
        assets.open(name).use { it.readBytes() }
    } catch (e: IOException) {
        null
    }
}

/**
 * The ARGB pixels of the bitmap's centred square, the only part the classifier uses, and its
 * side: no copy of the whole image. Software bitmaps only (getPixels refuses HARDWARE ones;
 * the app decodes with the software allocator).
 */
fun Bitmap.centreSquareArgb(): Pair<IntArray, Int> {
    val (y0, x0, s) = DevicePreprocessing.cropBox(height, width).let { Triple(it[0], it[1], it[2]) }
    val pixels = IntArray(s * s)
    getPixels(pixels, 0, s, x0, y0, s, s)
    return pixels to s
}
