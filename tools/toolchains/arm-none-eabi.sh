#!/usr/bin/env bash
# Cortex-M toolchain for the microcontroller tests (tests/test_micro.py, test_micro_cpp.py): Debian's
# gcc-arm-none-eabi with newlib (libnewlib-arm-none-eabi, libstdc++-arm-none-eabi-newlib for the
# C++ headers), qemu-system-arm to run microcontroller/common's golden test on a Cortex-M4F
# (mps2-an386), and g++ for the host tests of microcontroller/common.
# Idempotent: exits 0 at once when everything is there; prints one line.
set -euo pipefail

have_all() {
    command -v arm-none-eabi-g++ >/dev/null 2>&1 && command -v arm-none-eabi-size >/dev/null 2>&1 \
        && command -v g++ >/dev/null 2>&1 && command -v qemu-system-arm >/dev/null 2>&1 \
        && echo '#include <cstdio>' | arm-none-eabi-g++ -E -x c++ - >/dev/null 2>&1
}

if have_all; then
    echo "arm-none-eabi toolchain: ready ($(arm-none-eabi-gcc -dumpversion))"
    exit 0
fi

apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-arm-none-eabi libnewlib-arm-none-eabi \
    libstdc++-arm-none-eabi-newlib binutils-arm-none-eabi g++ qemu-system-arm >/dev/null 2>&1

if have_all; then
    echo "arm-none-eabi toolchain: installed ($(arm-none-eabi-gcc -dumpversion))"
else
    echo "arm-none-eabi toolchain: installation failed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm g++)" >&2
    exit 1
fi
