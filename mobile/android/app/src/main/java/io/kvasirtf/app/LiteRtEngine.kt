package io.kvasirtf.app

import android.os.Build
import io.kvasirtf.core.Accelerator
import io.kvasirtf.core.InferenceEngine
import io.kvasirtf.core.TensorSpec
import io.kvasirtf.core.closeOnFailure
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * LiteRT's Interpreter behind the core's InferenceEngine. [create] falls back to the CPU when the
 * requested delegate is missing or fails on this model, and says so in [note] (shown on screen).
 * Not thread-safe: the app creates, runs and closes it on its one model thread.
 */
class LiteRtEngine private constructor(
    private val interpreter: Interpreter,
    private val delegateHandle: Delegate?,
    val accelerator: Accelerator,
    val note: String?,
    val initMicros: Long,
    val numThreads: Int,
) : InferenceEngine {
    override val delegate: String get() = accelerator.label
    override val input: TensorSpec = interpreter.getInputTensor(0).spec()
    override val output: TensorSpec = interpreter.getOutputTensor(0).spec()
    private val inBuf = ByteBuffer.allocateDirect(input.elements).order(ByteOrder.nativeOrder())
    private val outBuf = ByteBuffer.allocateDirect(output.elements).order(ByteOrder.nativeOrder())

    override fun run(input: ByteArray, output: ByteArray) {
        inBuf.rewind()
        inBuf.put(input)
        inBuf.rewind()
        outBuf.rewind()
        interpreter.run(inBuf, outBuf)
        outBuf.rewind()
        outBuf.get(output)
    }

    override fun close() {
        interpreter.close()
        (delegateHandle as? AutoCloseable)?.close()
    }

    companion object {
        const val DEFAULT_THREADS = 4

        /**
         * [model] is the memory-mapped .tflite (ModelAssets.model): the Interpreter reads it in
         * place, as LiteRT's samples do with a MappedByteBuffer; it must stay mapped while the
         * interpreter lives.
         */
        fun create(model: ByteBuffer, wanted: Accelerator, threads: Int = DEFAULT_THREADS): LiteRtEngine {
            val cpu = Accelerator.CPU
            if (wanted != cpu) {
                val (delegate, why) = makeDelegate(wanted)
                if (delegate != null) {
                    try {
                        return build(model, delegate, wanted, null, threads)
                    } catch (e: Exception) {   // IllegalArgumentException: the delegate rejected the graph
                        (delegate as? AutoCloseable)?.close()
                        return build(model, null, cpu, "${wanted.label} failed on this model (${firstLine(e)}); running ${cpu.label}", threads)
                    }
                }
                return build(model, null, cpu, "$why; running ${cpu.label}", threads)
            }
            return build(model, null, cpu, null, threads)
        }

        private fun build(model: ByteBuffer, delegate: Delegate?, runsOn: Accelerator, note: String?, threads: Int): LiteRtEngine {
            val options = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true)
            delegate?.let { options.addDelegate(it) }
            val t0 = System.nanoTime()
            model.rewind()
            // allocateTensors() can throw after the native interpreter exists: close it then.
            val interpreter = Interpreter(model, options).closeOnFailure { it.allocateTensors(); it }
            return interpreter.closeOnFailure {
                LiteRtEngine(it, delegate, runsOn, note, (System.nanoTime() - t0) / 1000, threads)
            }
        }

        /** The delegate, or null and the reason it is not available on this phone. */
        private fun makeDelegate(wanted: Accelerator): Pair<Delegate?, String> = try {
            when (wanted) {
                Accelerator.GPU -> {
                    val compat = CompatibilityList()
                    try {
                        if (compat.isDelegateSupportedOnThisDevice) GpuDelegate(compat.bestOptionsForThisDevice) to ""
                        else null to "GPU delegate not supported on this phone"
                    } finally {
                        compat.close()
                    }
                }
                Accelerator.NNAPI ->
                    if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.O_MR1) NnApiDelegate() to ""
                    else null to "NNAPI needs Android 8.1"
                Accelerator.CPU -> null to ""
            }
        } catch (e: Throwable) {   // UnsatisfiedLinkError / NoClassDefFoundError when the native part is absent
            null to "${wanted.label} unavailable (${firstLine(e)})"
        }

        private fun firstLine(e: Throwable) = (e.message ?: e.javaClass.simpleName).lineSequence().first().take(120)

        private fun Tensor.spec(): TensorSpec {
            val q = quantizationParams()
            val quantized = q.scale != 0f
            return TensorSpec(shape().toList(), dataType().name.lowercase(),
                if (quantized) q.scale.toDouble() else null, if (quantized) q.zeroPoint else null)
        }
    }
}
