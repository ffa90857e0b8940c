#!/usr/bin/env python3
"""tools/compare.py: the `kvasir-compare` command (kvasir_tf.compare) for a checkout without install."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kvasir_tf.compare import main  # noqa: E402  (after the path above)

if __name__ == "__main__":
    sys.exit(main(prog="tools/compare.py"))
