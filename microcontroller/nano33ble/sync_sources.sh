#!/usr/bin/env bash
# Copy common/ and generated/ into the sketch's src/ (Arduino compiles only the sketch folder),
# renaming .cc to .cpp. Run after python -m kvasir_tf.micro ... --out microcontroller/generated.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
common="$here/../common"
generated="$here/../generated"
[ -f "$generated/model_data.cc" ] || { echo "error: $generated/model_data.cc missing: run python -m kvasir_tf.micro RUN_DIR --board nano33ble --out microcontroller/generated" >&2; exit 1; }
rm -rf "$here/src"
mkdir -p "$here/src"
for f in "$common"/*.h "$generated"/*.h; do cp "$f" "$here/src/"; done
for f in "$common"/*.cc "$generated"/*.cc; do cp "$f" "$here/src/$(basename "${f%.cc}").cpp"; done
echo "copied $(ls "$here/src" | wc -l) files into $here/src"
