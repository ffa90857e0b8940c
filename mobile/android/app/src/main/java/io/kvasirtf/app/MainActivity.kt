package io.kvasirtf.app

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.RadioGroup
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import io.kvasirtf.core.Benchmark
import io.kvasirtf.core.Classification
import io.kvasirtf.core.Classifier
import io.kvasirtf.core.DevicePreprocessing
import io.kvasirtf.core.ModelCheck
import io.kvasirtf.core.ModelState
import io.kvasirtf.core.RollingMedian
import io.kvasirtf.core.TimingStats
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * One screen: model state, camera preview or the picked image, top-3 with confidence, median
 * latency (inference and preprocessing apart), the delegate that runs, and the actions.
 * All model work runs on one worker thread, so the classifier's buffers are never shared.
 */
class MainActivity : ComponentActivity() {
    private lateinit var status: TextView
    private lateinit var results: TextView
    private lateinit var latency: TextView
    private lateinit var delegateView: TextView
    private lateinit var preview: PreviewView
    private lateinit var picked: ImageView
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()

    private var modelAssets: ModelAssets? = null
    private var engine: LiteRtEngine? = null
    private var classifier: Classifier? = null
    private var cameraProvider: ProcessCameraProvider? = null
    private val inferenceMs = RollingMedian(WINDOW)
    private val preprocessMs = RollingMedian(WINDOW)

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else status.text = getString(R.string.camera_denied)
    }
    private val pickImage = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        uri?.let(::classifyPicked)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        status = findViewById(R.id.status)
        results = findViewById(R.id.results)
        latency = findViewById(R.id.latency)
        delegateView = findViewById(R.id.delegate)
        preview = findViewById(R.id.preview)
        picked = findViewById(R.id.picked)
        findViewById<Button>(R.id.camera).setOnClickListener { requestCamera() }
        findViewById<Button>(R.id.pick).setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.benchmark).setOnClickListener { runBenchmark() }
        findViewById<RadioGroup>(R.id.accelerator).setOnCheckedChangeListener { _, id -> loadModel(accelerator(id)) }
        setActionsEnabled(false)
        loadModel(Accelerator.CPU)
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { engine?.close() }
        worker.shutdown()
    }

    private fun accelerator(id: Int) = when (id) {
        R.id.use_gpu -> Accelerator.GPU
        R.id.use_nnapi -> Accelerator.NNAPI
        else -> Accelerator.CPU
    }

    /** Read and check the assets, build the interpreter with [wanted], check it against the sidecar. */
    private fun loadModel(wanted: Accelerator) = worker.execute {
        engine?.close()
        engine = null
        classifier = null
        val files = modelAssets ?: ModelAssets(assets).also { modelAssets = it }
        val (state, note) = prepare(files, wanted)
        inferenceMs.clear()
        preprocessMs.clear()
        val ready = state is ModelState.Ready
        runOnUiThread {
            status.text = listOfNotNull(state.message, note).joinToString("\n")
            delegateView.text = engine?.let { getString(R.string.delegate_line, it.delegate) } ?: ""
            setActionsEnabled(ready)
            if (ready && cameraProvider == null && picked.visibility != View.VISIBLE) requestCamera()
        }
    }

    /** On the worker: the screen state and the delegate's fallback note; sets engine and classifier when Ready. */
    private fun prepare(files: ModelAssets, wanted: Accelerator): Pair<ModelState, String?> {
        val checked = files.state as? ModelState.Ready ?: return files.state to null
        val e = try {
            LiteRtEngine.create(files.modelBytes!!, wanted)
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

    private fun setActionsEnabled(on: Boolean) {
        for (id in intArrayOf(R.id.camera, R.id.pick, R.id.benchmark)) findViewById<Button>(id).isEnabled = on
    }

    private fun requestCamera() {
        if (!packageManager.hasSystemFeature(PackageManager.FEATURE_CAMERA_ANY)) {
            status.text = getString(R.string.no_camera)
            return
        }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun startCamera() {
        picked.visibility = View.GONE
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val previewUse = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .setOutputImageRotationEnabled(true)   // upright frames, as the training images are
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .build()
            analysis.setAnalyzer(worker) { image ->
                image.use { classifyBitmap(it.toBitmap()) }
            }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUse, analysis)
            cameraProvider = provider
        }, ContextCompat.getMainExecutor(this))
    }

    private fun stopCamera() {
        cameraProvider?.unbindAll()
        cameraProvider = null
    }

    private fun classifyPicked(uri: Uri) {
        stopCamera()
        worker.execute {
            val bitmap = try {
                decode(uri)
            } catch (e: Exception) {
                runOnUiThread { status.text = getString(R.string.image_unreadable, e.message ?: uri.toString()) }
                return@execute
            }
            runOnUiThread {
                picked.setImageBitmap(bitmap)
                picked.visibility = View.VISIBLE
            }
            classifyBitmap(bitmap)
        }
    }

    private fun decode(uri: Uri): Bitmap =
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { decoder, _, _ ->
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
            }
        } else {
            contentResolver.openInputStream(uri).use { BitmapFactory.decodeStream(it) }
                ?: throw IllegalArgumentException("not an image")
        }

    /** On the worker thread: one frame through the core, then the numbers to the screen. */
    private fun classifyBitmap(bitmap: Bitmap) {
        val clf = classifier ?: return
        val result = clf.classify(bitmap.argbPixels(), bitmap.width, bitmap.height)
        inferenceMs.add(result.inferenceNanos)
        preprocessMs.add(result.preprocessNanos)
        runOnUiThread { show(result) }
    }

    private fun show(r: Classification) {
        results.text = r.top.joinToString("\n") { String.format(Locale.getDefault(), "%-22s %5.1f %%", it.label, 100f * it.confidence) }
        latency.text = getString(R.string.latency, (inferenceMs.median() ?: 0L) / 1e6,
            (preprocessMs.median() ?: 0L) / 1e6, inferenceMs.count)
    }

    /** N invokes on the bundled test image, logged in benchmark_model's format (tag KvasirBench). */
    private fun runBenchmark() {
        val e = engine ?: return
        val clf = classifier ?: return
        val files = modelAssets ?: return
        stopCamera()
        worker.execute {
            val image = files.benchImage()
            val name = image?.first ?: "a grey frame (no bench_image in assets)"
            runOnUiThread { status.text = getString(R.string.benchmark_running, WARMUP, RUNS, name) }
            val size = clf.spec.imageSize
            val input = if (image != null) {
                DevicePreprocessing.argbToInput(image.second.argbPixels(), image.second.width, image.second.height,
                    size, clf.spec.inputQuant)
            } else {
                DevicePreprocessing.argbToInput(IntArray(size * size) { GREY }, size, size, size, clf.spec.inputQuant)
            }
            val result = Benchmark.run(e, input, WARMUP, RUNS, e.initMicros, e.numThreads, "assets/model.tflite",
                files.modelBytes!!.size.toLong())
            Benchmark.logLines(result).forEach { Log.i(BENCH_TAG, it) }
            val stats = TimingStats(result.runsUs)
            runOnUiThread {
                status.text = getString(R.string.benchmark_done, e.delegate, RUNS, stats.percentile(50) / 1e3, stats.avg / 1e3)
            }
        }
    }

    companion object {
        const val BENCH_TAG = "KvasirBench"
        const val WARMUP = 10
        const val RUNS = 100
        const val WINDOW = 30
        private const val GREY = 0xFF808080.toInt()
    }
}
