"""``python -m kvasir_tf.explain``: see kvasir_tf.explain.cli."""
import sys

from kvasir_tf.explain.cli import main

sys.exit(main())
