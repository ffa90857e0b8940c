package io.kvasirtf.app

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
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
import androidx.activity.viewModels
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.core.UseCaseGroup
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import androidx.core.view.doOnLayout
import io.kvasirtf.core.Accelerator

/**
 * One screen: model state, camera preview (with the classified square marked) or the picked
 * image, top-3 with confidence, median latency, the delegate that runs, and the actions. The
 * state lives in [ClassifierViewModel], so a rotation only redraws it; this class renders it
 * and owns what needs an activity (permission, photo picker, camera binding).
 */
class MainActivity : ComponentActivity() {
    private val model: ClassifierViewModel by viewModels()
    private lateinit var status: TextView
    private lateinit var results: TextView
    private lateinit var latency: TextView
    private lateinit var delegateView: TextView
    private lateinit var preview: PreviewView
    private lateinit var square: View
    private lateinit var picked: ImageView
    private lateinit var accelerators: RadioGroup
    private var cameraProvider: ProcessCameraProvider? = null
    private var cameraNote: String? = null
    private var shownBitmap: Bitmap? = null

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else showNote(getString(R.string.camera_denied))
    }
    private val pickImage = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        uri ?: return@registerForActivityResult
        stopCamera()
        val metrics = resources.displayMetrics
        model.pick(uri, minOf(metrics.widthPixels, metrics.heightPixels))
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        status = findViewById(R.id.status)
        results = findViewById(R.id.results)
        latency = findViewById(R.id.latency)
        delegateView = findViewById(R.id.delegate)
        preview = findViewById(R.id.preview)
        square = findViewById(R.id.analysed_square)
        picked = findViewById(R.id.picked)
        accelerators = findViewById(R.id.accelerator)
        findViewById<Button>(R.id.camera).setOnClickListener { requestCamera() }
        findViewById<Button>(R.id.pick).setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.benchmark).setOnClickListener {
            stopCamera()
            model.benchmark()
        }
        accelerators.setOnCheckedChangeListener { _, id -> model.selectAccelerator(accelerator(id)) }
        var cameraAsked = savedInstanceState != null
        model.state.observe(this) { s ->
            render(s)
            // Start the camera once the model is ready, unless a picked image is on screen.
            if (s.modelReady && s.picked == null && cameraProvider == null && !cameraAsked) {
                cameraAsked = true
                requestCamera()
            }
        }
        if (savedInstanceState != null && model.state.value?.picked == null && hasCameraPermission()) startCamera()
    }

    private fun render(s: UiState) {
        status.text = listOfNotNull(s.status, cameraNote).joinToString("\n")
        delegateView.text = s.runsOn
        results.text = s.top
        latency.text = s.latency
        if (shownBitmap !== s.picked) {
            picked.setImageBitmap(s.picked)
            shownBitmap = s.picked
        }
        picked.visibility = if (s.picked != null) View.VISIBLE else View.GONE
        // Controls follow the state machine: off while a reload or the benchmark is queued.
        for (id in intArrayOf(R.id.camera, R.id.pick, R.id.benchmark)) findViewById<Button>(id).isEnabled = s.controlsEnabled
        for (i in 0 until accelerators.childCount) accelerators.getChildAt(i).isEnabled = s.controlsEnabled
        accelerators.isEnabled = s.controlsEnabled
        val want = radioId(s.accelerator)
        if (accelerators.checkedRadioButtonId != want) accelerators.check(want)   // re-checking it queues no reload
    }

    private fun accelerator(id: Int) = when (id) {
        R.id.use_gpu -> Accelerator.GPU
        R.id.use_nnapi -> Accelerator.NNAPI
        else -> Accelerator.CPU
    }

    private fun radioId(a: Accelerator) = when (a) {
        Accelerator.GPU -> R.id.use_gpu
        Accelerator.NNAPI -> R.id.use_nnapi
        Accelerator.CPU -> R.id.use_cpu
    }

    private fun showNote(note: String?) {
        cameraNote = note
        model.state.value?.let(::render)
    }

    private fun hasCameraPermission() =
        ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED

    private fun requestCamera() {
        if (!packageManager.hasSystemFeature(PackageManager.FEATURE_CAMERA_ANY)) {
            showNote(getString(R.string.no_camera))
            return
        }
        if (hasCameraPermission()) startCamera() else askCamera.launch(Manifest.permission.CAMERA)
    }

    /** Binds preview and analysis after layout: the preview's ViewPort needs the view's size. */
    private fun startCamera() {
        model.cameraStarted()
        preview.doOnLayout { bindCamera() }
    }

    private fun bindCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            try {
                val provider = future.get()   // ExecutionException when CameraX cannot initialise
                val selector = chooseCamera(provider) ?: run {
                    showNote(getString(R.string.no_camera))
                    return@addListener
                }
                val previewUse = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
                val analysis = ImageAnalysis.Builder()
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .setOutputImageRotationEnabled(true)   // upright frames, as the training images are
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .build()
                analysis.setAnalyzer(model.worker, model.analyzer)
                // One ViewPort for both use cases: the analysis crop rect is what the preview shows
                // (CameraX "ViewPort" / UseCaseGroup; PreviewView.getViewPort() matches its FILL_CENTER).
                val group = UseCaseGroup.Builder().addUseCase(previewUse).addUseCase(analysis)
                preview.viewPort?.let(group::setViewPort)
                provider.unbindAll()
                provider.bindToLifecycle(this, selector, group.build())
                cameraProvider = provider
                square.visibility = View.VISIBLE
                showNote(if (selector == CameraSelector.DEFAULT_FRONT_CAMERA) getString(R.string.front_camera) else null)
            } catch (e: Exception) {   // ExecutionException, IllegalArgumentException, IllegalStateException
                Log.e(ClassifierViewModel.TAG, "camera", e)
                showNote(getString(R.string.camera_failed, e.message ?: e.javaClass.simpleName))
            }
        }, ContextCompat.getMainExecutor(this))
    }

    /** The back camera, else the front one (tablets, Chromebooks), else null. */
    private fun chooseCamera(provider: ProcessCameraProvider): CameraSelector? = when {
        provider.hasCamera(CameraSelector.DEFAULT_BACK_CAMERA) -> CameraSelector.DEFAULT_BACK_CAMERA
        provider.hasCamera(CameraSelector.DEFAULT_FRONT_CAMERA) -> CameraSelector.DEFAULT_FRONT_CAMERA
        else -> null
    }

    private fun stopCamera() {
        cameraProvider?.unbindAll()
        cameraProvider = null
        square.visibility = View.GONE
    }
}
