package io.kvasirtf.core

/**
 * Where the model runs. CPU means LiteRT's default XNNPACK kernels. NNAPI is deprecated from
 * Android 15 (API 35, developer.android.com/ndk/guides/neuralnetworks/migration-guide): it still
 * runs there, and the screen says so.
 */
enum class Accelerator(val label: String, val deprecatedFromApi: Int? = null) {
    CPU("XNNPACK (CPU)"),
    GPU("GPU"),
    NNAPI("NNAPI", deprecatedFromApi = 35);

    /** True when this phone's API level is one where the accelerator is deprecated. */
    fun deprecatedOn(sdkInt: Int): Boolean = deprecatedFromApi != null && sdkInt >= deprecatedFromApi
}
