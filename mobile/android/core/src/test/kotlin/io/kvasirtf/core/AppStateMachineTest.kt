package io.kvasirtf.core

import io.kvasirtf.core.AppStateMachine.State
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

/** Which action is allowed in which state: load, delegate switch, benchmark, close. */
class AppStateMachineTest {
    private fun ready(a: Accelerator = Accelerator.CPU) = AppStateMachine(a).apply { loaded(a, engineReady = true) }

    @Test
    fun controlsAreOffUntilTheFirstLoadSucceeds() {
        val m = AppStateMachine()
        assertEquals(State.Loading(Accelerator.CPU), m.state)
        assertFalse(m.controlsEnabled)
        assertFalse(m.classifies)
        assertFalse("benchmark while loading", m.startBenchmark())
        assertFalse("delegate switch while loading", m.selectAccelerator(Accelerator.GPU))
        m.loaded(Accelerator.CPU, engineReady = true)
        assertEquals(State.Ready(Accelerator.CPU), m.state)
        assertTrue(m.controlsEnabled)
        assertTrue(m.classifies)
    }

    @Test
    fun aQueuedReloadDisablesControlsAndRefusesTheBenchmark() {
        val m = ready()
        assertTrue(m.selectAccelerator(Accelerator.GPU))
        assertEquals(State.Loading(Accelerator.GPU), m.state)
        assertFalse(m.controlsEnabled)
        assertFalse("frames are dropped while the engine is rebuilt", m.classifies)
        // Benchmark tapped right after the switch: refused, the old engine is being closed.
        assertFalse(m.startBenchmark())
        assertEquals(State.Loading(Accelerator.GPU), m.state)
        // A second switch before the first finished is refused too (one reload at a time).
        assertFalse(m.selectAccelerator(Accelerator.NNAPI))
        m.loaded(Accelerator.GPU, engineReady = true)
        assertEquals(State.Ready(Accelerator.GPU), m.state)
        assertTrue(m.startBenchmark())
    }

    @Test
    fun reselectingTheRunningDelegateQueuesNoReload() {
        // After a rotation the restored radio button reports the delegate again: no model re-read.
        val m = ready(Accelerator.NNAPI)
        assertFalse(m.selectAccelerator(Accelerator.NNAPI))
        assertEquals(State.Ready(Accelerator.NNAPI), m.state)
    }

    @Test
    fun aBenchmarkBlocksSwitchesUntilItIsDone() {
        val m = ready()
        assertTrue(m.startBenchmark())
        assertEquals(State.Benchmarking(Accelerator.CPU), m.state)
        assertFalse(m.controlsEnabled)
        assertFalse(m.classifies)
        assertFalse(m.startBenchmark())
        assertFalse(m.selectAccelerator(Accelerator.GPU))
        m.benchmarkDone()
        assertEquals(State.Ready(Accelerator.CPU), m.state)
        assertTrue(m.selectAccelerator(Accelerator.GPU))
    }

    @Test
    fun aFailedLoadLeavesEverythingOff() {
        val m = AppStateMachine()
        m.loaded(Accelerator.CPU, engineReady = false)
        assertEquals(State.Failed(Accelerator.CPU), m.state)
        assertFalse(m.controlsEnabled)
        assertFalse(m.startBenchmark())
        assertFalse(m.selectAccelerator(Accelerator.GPU))
    }

    @Test
    fun nothingIsAllowedAfterClose() {
        val m = ready()
        assertTrue(m.selectAccelerator(Accelerator.GPU))
        m.close()
        // The load that was running reports back after the screen closed: it stays closed.
        m.loaded(Accelerator.GPU, engineReady = true)
        assertEquals(State.Closed(Accelerator.GPU), m.state)
        assertFalse(m.controlsEnabled)
        assertFalse(m.classifies)
        assertFalse(m.startBenchmark())
        assertFalse(m.selectAccelerator(Accelerator.CPU))
        m.benchmarkDone()
        assertEquals(State.Closed(Accelerator.GPU), m.state)
    }

    @Test
    fun aLoadReportForAnotherDelegateIsIgnored() {
        val m = ready()
        assertTrue(m.selectAccelerator(Accelerator.GPU))
        m.loaded(Accelerator.CPU, engineReady = true)
        assertEquals(State.Loading(Accelerator.GPU), m.state)
    }

    @Test
    fun nnapiIsMarkedDeprecatedFromAndroid15() {
        assertEquals(35, Accelerator.NNAPI.deprecatedFromApi)
        assertFalse(Accelerator.NNAPI.deprecatedOn(34))
        assertTrue(Accelerator.NNAPI.deprecatedOn(35))
        assertFalse(Accelerator.GPU.deprecatedOn(36))
        assertFalse(Accelerator.CPU.deprecatedOn(36))
    }

    @Test
    fun aResourceIsClosedWhenItsSetupThrows() {
        class Res : AutoCloseable {
            var closed = 0
            override fun close() { closed++ }
        }
        val bad = Res()
        try {
            bad.closeOnFailure<Res, Unit> { throw IllegalStateException("allocateTensors failed") }
            throw AssertionError("the failure was swallowed")
        } catch (e: IllegalStateException) {
            assertEquals("allocateTensors failed", e.message)
        }
        assertEquals(1, bad.closed)
        val good = Res()
        assertEquals(7, good.closeOnFailure { 7 })
        assertEquals(0, good.closed)
    }
}
