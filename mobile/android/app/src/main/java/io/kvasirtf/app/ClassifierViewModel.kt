package io.kvasirtf.app

import android.app.Application
import android.graphics.Bitmap
import android.net.Uri
import android.os.Build
import android.util.Log
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.LiveData
import androidx.lifecycle.MutableLiveData
import io.kvasirtf.core.Accelerator
import io.kvasirtf.core.AppStateMachine
import io.kvasirtf.core.Benchmark
import io.kvasirtf.core.Classification
import io.kvasirtf.core.Classifier
import io.kvasirtf.core.DecodeSize
import io.kvasirtf.core.DevicePreprocessing
import io.kvasirtf.core.ModelCheck
import io.kvasirtf.core.ModelState
import io.kvasirtf.core.RollingMedian
import io.kvasirtf.core.TimingStats
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/** Everything the screen shows; the activity only renders it. */
data class UiState(
    val status: String,
    val runsOn: String = "",
    val accelerator: Accelerator = Accelerator.CPU,
    val controlsEnabled: Boolean = false,
    val modelReady: Boolean = false,
    val top: String = "",
    val latency: String = "",
    val picked: Bitmap? = null,
)

/**
 * The screen's state, kept across rotation: the model files (mapped and hashed once), the
 * engine, the picked image, the last result. All model work runs on [worker], one task at a
 * time, and the engine is created, used and closed only there: a benchmark queued after a
 * delegate switch runs after the new engine exists, never on the closed one. [machine] decides
 * which action may be queued at all (a reload turns the controls off until it is done).
 */
class ClassifierViewModel(app: Application) : AndroidViewModel(app) {
    /** The model thread; also the camera analyzer's executor. */
    val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private val machine = AppStateMachine(Accelerator.CPU)
    private val decoder = PickedImageDecoder(app.contentResolver)
    private var latest = UiState(status = app.getString(R.string.loading))
    private val ui = MutableLiveData(latest)
    val state: LiveData<UiState> get() = ui

    // Confined to [worker].
    private var files: ModelAssets? = null
    private var engine: LiteRtEngine? = null
    private var classifier: Classifier? = null
    private val inferenceMs = RollingMedian(WINDOW)
    private val preprocessMs = RollingMedian(WINDOW)

    /** The camera analyzer: classifies the square the preview marks, on [worker]. */
    val analyzer = FrameAnalyzer(onSquare = { argb, side -> classify(argb, side) }, onError = ::failed)

    init {
        worker.execute { load(Accelerator.CPU) }
    }

    /** A delegate was chosen: reload unless it runs already or another action is in progress. */
    fun selectAccelerator(wanted: Accelerator) {
        val queued = machine.selectAccelerator(wanted)
        update { if (queued) it.copy(status = getApplication<Application>().getString(R.string.loading)) else it }
        if (queued) worker.execute { load(wanted) }
    }

    /** The camera is back on: the picked image is dropped. */
    fun cameraStarted() = update { it.copy(picked = null) }

    fun pick(uri: Uri, screenShortSide: Int) {
        if (!machine.classifies) return
        worker.execute {
            val clf = classifier ?: return@execute
            try {
                val bitmap = decoder.decode(uri, DecodeSize.minShortSide(clf.spec.imageSize, screenShortSide))
                update { it.copy(picked = bitmap) }
                val (argb, side) = bitmap.centreSquareArgb()
                classify(argb, side)
            } catch (e: Exception) {
                update { it.copy(status = getApplication<Application>().getString(R.string.image_unreadable, e.message ?: uri.toString())) }
            } catch (e: OutOfMemoryError) {
                update { it.copy(status = getApplication<Application>().getString(R.string.image_unreadable, "out of memory")) }
            }
        }
    }

    /** N invokes on the bundled test image, logged in benchmark_model's format (tag KvasirBench). */
    fun benchmark() {
        if (!machine.startBenchmark()) return
        update { it }
        worker.execute {
            try {
                runBenchmark()
            } catch (e: Exception) {
                failed(e)
            } catch (e: OutOfMemoryError) {
                failed(e)
            } finally {
                machine.benchmarkDone()
                update { it }
            }
        }
    }

    override fun onCleared() {
        machine.close()
        worker.execute {
            engine?.close()
            engine = null
            classifier = null
        }
        worker.shutdown()
    }

    // ---- on the worker ----

    private fun load(wanted: Accelerator) {
        engine?.close()
        engine = null
        classifier = null
        inferenceMs.clear()
        preprocessMs.clear()
        val (state, note) = try {
            prepare(wanted)
        } catch (e: Exception) {
            ModelState.Invalid("cannot read the assets (${e.message})") to null
        } catch (e: OutOfMemoryError) {
            ModelState.Invalid("out of memory while loading the model") to null
        }
        val e = engine
        machine.loaded(wanted, e != null)
        update {
            it.copy(status = listOfNotNull(state.message, note).joinToString("\n"), runsOn = e?.let(::runsOn) ?: "",
                modelReady = e != null, top = "", latency = "")
        }
    }

    /** The screen state and the delegate's fallback note; sets engine and classifier when Ready. */
    private fun prepare(wanted: Accelerator): Pair<ModelState, String?> {
        val assets = files ?: ModelAssets(getApplication<Application>().assets).also { files = it }
        val checked = assets.state as? ModelState.Ready ?: return assets.state to null
        val e = try {
            LiteRtEngine.create(assets.model!!, wanted)
        } catch (ex: Exception) {   // the flatbuffer does not load even on the CPU
            return ModelState.Invalid("LiteRT cannot load model.tflite (${ex.message})") to null
        }
        val state = ModelCheck.checkEngine(checked, e)
        if (state !is ModelState.Ready) {
            e.close()
            return state to null
        }
        engine = e
        classifier = Classifier(state.spec, state.labels, e)
        return state to e.note
    }

    private fun runsOn(e: LiteRtEngine): String {
        val app = getApplication<Application>()
        val line = app.getString(R.string.delegate_line, e.delegate)
        return if (e.accelerator.deprecatedOn(Build.VERSION.SDK_INT)) "$line\n${app.getString(R.string.nnapi_deprecated)}" else line
    }

    /** One square (camera or picked image) through the core, then the numbers to the screen. */
    private fun classify(argb: IntArray, side: Int) {
        val clf = classifier ?: return
        if (!machine.classifies) return       // a reload or benchmark is queued: drop the frame
        try {
            val result = clf.classify(argb, side, side)
            inferenceMs.add(result.inferenceNanos)
            preprocessMs.add(result.preprocessNanos)
            show(result)
        } catch (e: Exception) {
            failed(e)
        } catch (e: OutOfMemoryError) {
            failed(e)
        }
    }

    private fun show(r: Classification) {
        val app = getApplication<Application>()
        val ranked = r.top.joinToString("\n") { String.format(Locale.getDefault(), "%-22s %5.1f %%", it.label, 100f * it.confidence) }
        val abstain = classifier?.spec?.abstainBelow
        val top = if (r.uncertain && abstain != null) {
            app.getString(R.string.uncertain, 100.0 * abstain) + "\n" + ranked
        } else {
            ranked
        }
        val latency = app.getString(R.string.latency, (inferenceMs.median() ?: 0L) / 1e6, (preprocessMs.median() ?: 0L) / 1e6,
            inferenceMs.count)
        update { it.copy(top = top, latency = latency) }
    }

    private fun runBenchmark() {
        val app = getApplication<Application>()
        val e = engine ?: return
        val clf = classifier ?: return
        val assets = files ?: return
        val image = assets.benchImage()
        val name = image?.first ?: "a grey frame (no bench_image in assets)"
        update { it.copy(status = app.getString(R.string.benchmark_running, WARMUP, RUNS, name)) }
        val size = clf.spec.imageSize
        val (argb, side) = image?.second?.centreSquareArgb() ?: (IntArray(size * size) { GREY } to size)
        val input = DevicePreprocessing.argbToInput(argb, side, side, size, clf.spec.inputQuant)
        val result = Benchmark.run(e, input, WARMUP, RUNS, e.initMicros, e.numThreads, "assets/model.tflite", assets.modelSize)
        Benchmark.logLines(result).forEach { Log.i(BENCH_TAG, it) }
        val stats = TimingStats(result.runsUs)
        update { it.copy(status = app.getString(R.string.benchmark_done, e.delegate, RUNS, stats.percentile(50) / 1e3, stats.avg / 1e3)) }
    }

    /** Any thread: a LiteRT error or an OOM becomes a status line instead of a crash. */
    private fun failed(e: Throwable) {
        Log.e(TAG, "classification failed", e)
        update { it.copy(status = getApplication<Application>().getString(R.string.classification_failed, e.message ?: e.javaClass.simpleName)) }
    }

    /** Any thread: a new screen state; the controls always follow the state machine. */
    private fun update(change: (UiState) -> UiState) = synchronized(this) {
        latest = change(latest).copy(controlsEnabled = machine.controlsEnabled, accelerator = machine.state.accelerator)
        ui.postValue(latest)
    }

    companion object {
        const val TAG = "KvasirApp"
        const val BENCH_TAG = "KvasirBench"
        const val WARMUP = 10
        const val RUNS = 100
        const val WINDOW = 30
        private const val GREY = 0xFF808080.toInt()
    }
}
