// The pure-Kotlin core: no Android imports, so its tests run on any JVM
// (here: ./gradlew :core:test; in the kvasir_tf repo: tests/test_android_core.py with kotlinc).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // Golden vectors: written by tests/test_android_core.py, or by hand with kvasir_tf.golden;
    // pass -PkvasirGolden=DIR. Without it the golden tests are skipped (JUnit assumptions).
    (project.findProperty("kvasirGolden") as String?)?.let { systemProperty("kvasir.golden", it) }
}
