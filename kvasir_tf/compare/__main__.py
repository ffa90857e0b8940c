import sys

from kvasir_tf.compare.cli import main

sys.exit(main())
