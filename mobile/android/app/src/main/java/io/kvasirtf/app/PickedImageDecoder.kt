package io.kvasirtf.app

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import androidx.annotation.RequiresApi
import androidx.exifinterface.media.ExifInterface
import io.kvasirtf.core.DecodeSize
import io.kvasirtf.core.ExifOrientation
import java.io.IOException

/**
 * A photo-picker URI -> an upright software bitmap whose short side is about [minShortSide]
 * (DecodeSize): never the full 12-50 MP, which would need 48-200 MB of ARGB. API 28+:
 * ImageDecoder with a target size, which applies the EXIF orientation itself. API 24-27:
 * BitmapFactory with inSampleSize, which ignores EXIF, so the tag is read with
 * androidx.exifinterface and applied by the core's ExifOrientation.
 */
class PickedImageDecoder(private val resolver: ContentResolver) {
    fun decode(uri: Uri, minShortSide: Int): Bitmap =
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) decodeScaled(uri, minShortSide)
        else decodeSampled(uri, minShortSide)

    @RequiresApi(Build.VERSION_CODES.P)
    private fun decodeScaled(uri: Uri, minShortSide: Int): Bitmap =
        ImageDecoder.decodeBitmap(ImageDecoder.createSource(resolver, uri)) { decoder, info, _ ->
            val (w, h) = DecodeSize.targetSize(info.size.width, info.size.height, minShortSide)
            decoder.setTargetSize(w, h)
            decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE   // getPixels refuses HARDWARE bitmaps
        }

    private fun decodeSampled(uri: Uri, minShortSide: Int): Bitmap {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        open(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw IOException("not an image")
        val options = BitmapFactory.Options().apply {
            inSampleSize = DecodeSize.sampleSize(bounds.outWidth, bounds.outHeight, minShortSide)
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val stored = open(uri).use { BitmapFactory.decodeStream(it, null, options) } ?: throw IOException("not an image")
        val orientation = ExifOrientation.fromTag(exifTag(uri))
        if (orientation.isIdentity) return stored
        val pixels = IntArray(stored.width * stored.height)
        stored.getPixels(pixels, 0, stored.width, 0, 0, stored.width, stored.height)
        val (w, h) = orientation.outputSize(stored.width, stored.height)
        val upright = orientation.apply(pixels, stored.width, stored.height)
        stored.recycle()
        return Bitmap.createBitmap(upright, w, h, Bitmap.Config.ARGB_8888)
    }

    /** The EXIF orientation tag, or ORIENTATION_UNDEFINED (0) when the file has none (e.g. PNG). */
    private fun exifTag(uri: Uri): Int = try {
        open(uri).use { ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_UNDEFINED) }
    } catch (e: IOException) {
        ExifInterface.ORIENTATION_UNDEFINED
    }

    private fun open(uri: Uri) = resolver.openInputStream(uri) ?: throw IOException("cannot open $uri")
}
