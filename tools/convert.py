#!/usr/bin/env python3
"""Convert a training run (or a .keras model) to a verified TFLite model with sidecar and labels.

    tools/convert.py RUN_DIR_OR_MODEL --int8|--float|--fp16|--dynamic [--out PATH] [--data-dir DIR]
                     [--num-calibration N] [--allow-fewer] [--c-array] [--debug-report]
                     [--per-tensor] [--force]

--int8 on a float model is post-training quantization calibrated on the run's training split
(default up to 300 images; an explicit --num-calibration larger than the split is an error
unless --allow-fewer); on a QAT model it uses the learned ranges.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kvasir_tf  # noqa: E402,F401  (Keras 2 before TensorFlow)
from kvasir_tf.convert import DEFAULT_NUM_CALIBRATION, MODES, convert  # noqa: E402
from kvasir_tf.errors import KvasirError, cli  # noqa: E402


def _parser():
    ap = argparse.ArgumentParser(prog="tools/convert.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="run directory (runs/NAME) or .keras model file")
    for m in MODES:
        ap.add_argument(f"--{m}", dest="modes", action="append_const", const=m,
                        help={"int8": "full integer: int8 weights, activations, input and output",
                              "float": "float32", "fp16": "float16 weights",
                              "dynamic": "dynamic-range (int8 weights, float activations)"}[m])
    ap.add_argument("--out", help="output .tflite path (default RUN/export/model_MODE.tflite)")
    ap.add_argument("--data-dir", help="dataset root: calibration images and class names")
    ap.add_argument("--num-calibration", type=int, default=None,
                    help=f"calibration images for --int8 (default up to {DEFAULT_NUM_CALIBRATION})")
    ap.add_argument("--allow-fewer", action="store_true",
                    help="use all training images when fewer than --num-calibration exist")
    ap.add_argument("--c-array", action="store_true", help="also write model_data.cc/.h for TFLite Micro")
    ap.add_argument("--debug-report", action="store_true",
                    help="per-layer quantization error CSV (post-training --int8 only)")
    ap.add_argument("--per-tensor", action="store_true",
                    help="post-training --int8 with one weight scale per tensor (smaller, less accurate)")
    ap.add_argument("--force", action="store_true", help="overwrite existing output files")
    return ap


@cli
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    modes = args.modes or []
    if len(modes) != 1:
        raise KvasirError("choose exactly one of --int8, --float, --fp16, --dynamic"
                          + (f" (got {' '.join('--' + m for m in modes)})" if modes else ""))
    mode = modes[0]
    if mode != "int8" and (args.num_calibration is not None or args.allow_fewer):
        raise KvasirError(f"--num-calibration/--allow-fewer only apply to --int8, not --{mode}")
    if args.debug_report and mode != "int8":
        raise KvasirError(f"--debug-report only applies to --int8, not --{mode}")
    if args.c_array and mode != "int8":
        print(f"note: --c-array with --{mode}: TFLite Micro runs int8 models best", file=sys.stderr)
    convert(args.source, args.out, mode, num_calibration=args.num_calibration,
            allow_fewer=args.allow_fewer, force=args.force, c_array=args.c_array,
            debug_report=args.debug_report, data_dir=args.data_dir, per_tensor=args.per_tensor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
