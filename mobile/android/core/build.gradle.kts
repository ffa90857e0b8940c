// The pure-Kotlin core: no Android imports, so its tests run on any JVM
// (here: ./gradlew :core:test; in the kvasir_tf repo: tests/test_android_core.py with kotlinc).
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.kotlin.jvm)
}

// Java 17 bytecode from the JDK that runs Gradle (no toolchain to resolve), as in app/.
java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // Golden vectors: written by tests/test_android_core.py, or by hand with kvasir_tf.golden;
    // pass -PkvasirGolden=DIR. Without it the golden tests are skipped (JUnit assumptions).
    (project.findProperty("kvasirGolden") as String?)?.let { systemProperty("kvasir.golden", it) }
}
