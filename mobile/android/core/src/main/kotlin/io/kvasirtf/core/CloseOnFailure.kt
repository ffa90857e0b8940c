package io.kvasirtf.core

/**
 * Runs [block] on a freshly opened resource and closes the resource if [block] throws, so a
 * half-built object does not leak: the app wraps LiteRT's Interpreter in it, whose
 * allocateTensors() can throw after the native interpreter exists.
 */
inline fun <T : AutoCloseable, R> T.closeOnFailure(block: (T) -> R): R =
    try {
        block(this)
    } catch (e: Throwable) {
        try {
            close()
        } catch (suppressed: Throwable) {
            e.addSuppressed(suppressed)
        }
        throw e
    }
