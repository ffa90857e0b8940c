#!/usr/bin/env bash
# Headless Chromium for the report.html render test (tests/test_explain_cli.py checks that every
# image of the saliency report loads): Debian's `chromium` package.
# Idempotent: exits 0 at once when it is there; prints one line.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: ready ($(chromium --version 2>/dev/null | head -1))"
    exit 0
fi

apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core \
    >/dev/null 2>&1

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: installed ($(chromium --version 2>/dev/null | head -1))"
else
    echo "chromium: installation failed (apt-get install chromium)" >&2
    exit 1
fi
