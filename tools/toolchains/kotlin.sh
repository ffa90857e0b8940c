#!/usr/bin/env bash
# Kotlin/JVM toolchain for the Android app's pure-Kotlin core tests (tests/test_android_core.py):
# a JDK (Debian default-jdk-headless when java is missing), JUnit 4 from Debian (junit4) and the
# Kotlin compiler from the npm registry (JetBrains' package kotlin-compiler: the full kotlinc
# distribution; npm links only kotlinc-js, the JVM compiler is bin/kotlinc inside the package).
# Idempotent: exits 0 at once when everything is there; prints one line.
set -euo pipefail

kotlinc_path() {
    command -v kotlinc 2>/dev/null && return 0
    command -v npm >/dev/null 2>&1 || return 1
    local root
    root="$(npm root -g 2>/dev/null)" || return 1
    [ -x "$root/kotlin-compiler/bin/kotlinc" ] && echo "$root/kotlin-compiler/bin/kotlinc"
}

have_all() {
    command -v java >/dev/null 2>&1 && [ -f /usr/share/java/junit4.jar ] && kotlinc_path >/dev/null
}

if have_all; then
    echo "kotlin toolchain: ready ($(kotlinc_path), junit4, $(java -version 2>&1 | head -n1))"
    exit 0
fi

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then apt-get update -q >/dev/null; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

command -v java >/dev/null 2>&1 || apt_install default-jdk-headless
[ -f /usr/share/java/junit4.jar ] || apt_install junit4
if ! kotlinc_path >/dev/null; then
    command -v npm >/dev/null 2>&1 || apt_install npm
    npm install -g --silent kotlin-compiler >/dev/null
fi

if have_all; then
    echo "kotlin toolchain: installed ($(kotlinc_path), junit4, $(java -version 2>&1 | head -n1))"
else
    echo "kotlin toolchain: could not install java/junit4/kotlin-compiler (see apt/npm output above)" >&2
    exit 1
fi
