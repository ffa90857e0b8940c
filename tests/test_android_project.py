"""The Android project's files, checked without an Android SDK (none is reachable here).

Not a build: it catches what a build would reject first (a catalog alias that does not exist, an
R.id or R.string the resources do not define, Android imports in the pure-Kotlin core) and the
project's own rules (minSdk, no hard-coded input map, size or labels in the app).
"""
import re
import tomllib
from pathlib import Path

import pytest

from kvasir_tf.data.classes import KVASIR_V2_CLASSES

ANDROID = Path(__file__).resolve().parents[1] / "mobile" / "android"
APP = ANDROID / "app"
CORE_MAIN = ANDROID / "core" / "src" / "main" / "kotlin"
APP_SRC = APP / "src" / "main" / "java"


def kotlin_files(root):
    files = sorted(root.rglob("*.kt"))
    assert files, root
    return files


def catalog():
    return tomllib.loads((ANDROID / "gradle" / "libs.versions.toml").read_text())


def test_every_catalog_alias_used_by_the_build_exists():
    cat = catalog()
    libraries = {k.replace("-", ".") for k in cat["libraries"]}
    plugins = {k.replace("-", ".") for k in cat["plugins"]}
    for entry in list(cat["libraries"].values()) + list(cat["plugins"].values()):
        assert entry["version"]["ref"] in cat["versions"], entry        # version.ref = "..." in TOML
    used = 0
    for gradle in ANDROID.rglob("*.gradle.kts"):
        text = gradle.read_text()
        for alias in re.findall(r"libs\.plugins\.([\w.]+)", text):
            assert alias in plugins, f"{gradle.name}: libs.plugins.{alias} is not in the catalog"
            used += 1
        for alias in re.findall(r"libs\.(?!plugins\.)([\w.]+)", text):
            assert alias in libraries, f"{gradle.name}: libs.{alias} is not in the catalog"
            used += 1
    assert used >= 12


def test_sdk_levels_litert_camerax_and_wrapper():
    app = (APP / "build.gradle.kts").read_text()
    assert int(re.search(r"minSdk = (\d+)", app).group(1)) >= 24
    assert int(re.search(r"compileSdk = (\d+)", app).group(1)) >= 35
    assert int(re.search(r"targetSdk = (\d+)", app).group(1)) >= 35
    libs = catalog()["libraries"]
    groups = {(v["group"], v["name"]) for v in libs.values()}
    assert {("com.google.ai.edge.litert", "litert"), ("com.google.ai.edge.litert", "litert-gpu"),
            ("androidx.camera", "camera-core"), ("androidx.camera", "camera-view"),
            ("androidx.activity", "activity-ktx")} <= groups
    wrapper = (ANDROID / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    assert re.search(r"distributionUrl=https\\://services\.gradle\.org/distributions/gradle-[89]\.[\d.]+-bin\.zip", wrapper)
    settings = (ANDROID / "settings.gradle.kts").read_text()
    assert 'include(":core", ":app")' in settings
    assert "project(\":core\")" in app


def test_core_has_no_android_imports():
    for f in kotlin_files(CORE_MAIN):
        bad = [line for line in f.read_text().splitlines() if re.match(r"import (android|androidx)\.", line)]
        assert not bad, f"{f.name}: {bad}"


def test_app_resources_define_every_id_and_string_the_code_uses():
    layout = (APP / "src/main/res/layout/activity_main.xml").read_text()
    strings = (APP / "src/main/res/values/strings.xml").read_text()
    ids = set(re.findall(r'@\+id/(\w+)', layout))
    names = set(re.findall(r'<string name="(\w+)"', strings))
    code = "\n".join(f.read_text() for f in kotlin_files(APP_SRC))
    assert set(re.findall(r"R\.id\.(\w+)", code)) <= ids
    assert set(re.findall(r"R\.string\.(\w+)", code)) <= names
    manifest = (APP / "src/main/AndroidManifest.xml").read_text()
    assert "android.permission.CAMERA" in manifest and 'android:name=".MainActivity"' in manifest


@pytest.mark.parametrize("root", [APP_SRC, CORE_MAIN], ids=["app", "core"])
def test_no_label_input_size_or_pixel_map_is_hard_coded(root):
    """The sidecar is the only source of the image size, scale, zero point and class names."""
    for f in kotlin_files(root):
        text = f.read_text()
        for name in KVASIR_V2_CLASSES + ("polyp", "mucosa"):
            assert f'"{name}' not in text, f"{f.name} names the class {name}"
        if root == APP_SRC:
            literals = re.findall(r"(?<![\w.])(?:-?128|127\.5|255|224|96|64|32)(?![\w.])", text)
            assert not literals, f"{f.name}: {literals}"


def test_builds_on_a_stock_android_studio_without_a_toolchain_resolver():
    """Android Studio bundles JDK 21: a jvmToolchain(17) with no resolver fails with "No matching
    toolchains found". The modules target Java 17 bytecode from the running JDK instead."""
    scripts = {p.relative_to(ANDROID).as_posix(): p.read_text() for p in ANDROID.rglob("*.gradle.kts")}
    settings = scripts["settings.gradle.kts"]
    for name, text in scripts.items():
        if "jvmToolchain(" in text:
            assert "foojay-resolver-convention" in settings, f"{name}: jvmToolchain without a toolchain resolver"
    app, core = scripts["app/build.gradle.kts"], scripts["core/build.gradle.kts"]
    assert "jvmToolchain(" not in app + core
    for name, text in (("app", app), ("core", core)):
        assert "jvmTarget.set(JvmTarget.JVM_17)" in text, name
        assert "targetCompatibility = JavaVersion.VERSION_17" in text, name


def test_the_launcher_icon_is_an_adaptive_vector_with_a_fallback():
    res = APP / "src/main/res"
    manifest = (APP / "src/main/AndroidManifest.xml").read_text()
    assert 'android:icon="@mipmap/ic_launcher"' in manifest
    adaptive = (res / "mipmap-anydpi-v26/ic_launcher.xml").read_text()
    assert "<adaptive-icon" in adaptive
    legacy = (res / "mipmap/ic_launcher.xml").read_text()              # minSdk 24 < 26
    colors = set(re.findall(r'<color name="(\w+)"', (res / "values/colors.xml").read_text()))
    for text in (adaptive, legacy):
        refs = re.findall(r'android:drawable="@(\w+)/(\w+)"', text)
        assert {kind for kind, _ in refs} == {"color", "drawable"}
        for kind, name in refs:
            if kind == "color":
                assert name in colors
            else:
                vector = (res / "drawable" / f"{name}.xml").read_text()
                assert "<vector" in vector and 'android:viewportWidth="108"' in vector


def test_custom_views_in_the_layout_exist():
    layout = (APP / "src/main/res/layout/activity_main.xml").read_text()
    custom = re.findall(r"<(io\.kvasirtf\.app\.\w+)", layout)
    assert custom == ["io.kvasirtf.app.AnalysedSquareView"]
    code = "\n".join(f.read_text() for f in kotlin_files(APP_SRC))
    for cls in custom:
        assert re.search(rf"class {cls.rsplit('.', 1)[1]}\b", code), cls


def test_no_file_names_a_tool_that_does_not_exist():
    """The assets are installed by the kvasir-android-assets console script; tools/android_assets.py never existed."""
    repo = ANDROID.parents[1]
    assert not (repo / "tools" / "android_assets.py").exists()
    for f in [*ANDROID.rglob("*.kt"), *ANDROID.rglob(".gitignore"), ANDROID.parent / "README.md"]:
        assert "tools/android_assets.py" not in f.read_text(), f
