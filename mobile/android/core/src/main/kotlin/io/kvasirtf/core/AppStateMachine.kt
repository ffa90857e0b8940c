package io.kvasirtf.core

/**
 * Which action the screen allows when: loading the model, switching delegate, benchmarking.
 * The app's ViewModel asks it before queueing work on its model thread, so a delegate switch
 * and a benchmark never overlap (the benchmark would invoke an interpreter the reload closed)
 * and the controls are off while a reload is queued. Thread-safe: the UI thread asks, the model
 * thread reports.
 */
class AppStateMachine(initial: Accelerator = Accelerator.CPU) {
    sealed class State {
        abstract val accelerator: Accelerator

        /** A model (re)load with [accelerator] is queued or running: no engine to use. */
        data class Loading(override val accelerator: Accelerator) : State()

        /** An engine runs on [accelerator] (it may be the CPU fallback of another request). */
        data class Ready(override val accelerator: Accelerator) : State()

        /** No engine: the files are missing or unusable; only a restart with new assets helps. */
        data class Failed(override val accelerator: Accelerator) : State()

        /** The benchmark owns the engine until it reports back. */
        data class Benchmarking(override val accelerator: Accelerator) : State()

        /** The screen is gone for good; the engine is closed or about to be. */
        data class Closed(override val accelerator: Accelerator) : State()
    }

    @get:Synchronized
    var state: State = State.Loading(initial)
        private set

    /** Delegate choice, camera, pick and benchmark buttons: usable only with a ready engine. */
    val controlsEnabled: Boolean get() = state is State.Ready

    /** Camera frames and picked images are classified only with a ready engine; otherwise dropped. */
    val classifies: Boolean get() = state is State.Ready

    /**
     * The user chose [wanted]: true when a reload must be queued (the state is Loading now).
     * False, and nothing changes, when it is the delegate already running (a restored radio
     * button re-reports it after rotation) or when no reload is allowed (loading, benchmarking,
     * failed, closed).
     */
    @Synchronized
    fun selectAccelerator(wanted: Accelerator): Boolean {
        val s = state
        if (s !is State.Ready || s.accelerator == wanted) return false
        state = State.Loading(wanted)
        return true
    }

    /** The model thread finished the load it was asked for: Ready with an engine, Failed without. */
    @Synchronized
    fun loaded(accelerator: Accelerator, engineReady: Boolean) {
        val s = state
        if (s !is State.Loading || s.accelerator != accelerator) return   // closed meanwhile: stay closed
        state = if (engineReady) State.Ready(accelerator) else State.Failed(accelerator)
    }

    /** True (and Benchmarking) when the benchmark may start: only with a ready engine. */
    @Synchronized
    fun startBenchmark(): Boolean {
        val s = state
        if (s !is State.Ready) return false
        state = State.Benchmarking(s.accelerator)
        return true
    }

    @Synchronized
    fun benchmarkDone() {
        val s = state
        if (s is State.Benchmarking) state = State.Ready(s.accelerator)
    }

    /** The screen is finished: nothing is allowed any more. */
    @Synchronized
    fun close() {
        state = State.Closed(state.accelerator)
    }
}
