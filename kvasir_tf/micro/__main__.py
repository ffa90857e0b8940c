"""CLI: kvasir-micro (python -m kvasir_tf.micro) RUN_DIR|MODEL.tflite --out DIR --board nano33ble|esp32s3."""
from __future__ import annotations

import argparse
import sys

from kvasir_tf.errors import cli
from kvasir_tf.micro.budgets import BOARDS
from kvasir_tf.micro.tflm import MIN_TOP1_AGREEMENT, TOLERANCE_STEPS


def _parser():
    p = argparse.ArgumentParser(prog="kvasir-micro", description=__doc__.splitlines()[0])
    p.add_argument("source", help="a run directory (converted to int8 here) or an int8 .tflite with its sidecar")
    p.add_argument("--out", required=True, help="folder for the model, C array, model_settings.h, op resolver, reports")
    p.add_argument("--board", choices=list(BOARDS), default="nano33ble")
    p.add_argument("--data-dir", help="the run's dataset, when it moved since training")
    p.add_argument("--run", help="with a .tflite source: the run whose test split checks the model")
    p.add_argument("--per-tensor", choices=["all", "pointwise"], default=None,
                   help="one weight scale per tensor on every weighted op (all) or all but depthwise "
                        "convs (pointwise): a smaller file; accuracy is reported both ways")
    gate = p.add_mutually_exclusive_group()
    gate.add_argument("--tflm-tolerance", type=int, default=TOLERANCE_STEPS, metavar="STEPS",
                      help="accept TFLM outputs this many int8 steps from LiteRT's reference kernels "
                           f"(default {TOLERANCE_STEPS}: a board on an older TFLM computes MEAN up to 2 steps away)")
    p.add_argument("--tflm-min-top1", type=float, default=MIN_TOP1_AGREEMENT, metavar="FRACTION",
                   help=f"the fraction of test images whose top-1 must agree (default {MIN_TOP1_AGREEMENT})")
    gate.add_argument("--strict", action="store_true",
                      help="TFLM must equal LiteRT's reference kernels bit for bit")
    p.add_argument("--force", action="store_true", help="overwrite an earlier export in --out")
    return p


@cli
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from kvasir_tf.micro.export import export_micro
    images = labels = None
    if args.run:
        from kvasir_tf.micro.export import run_test_images
        images, labels = run_test_images(args.run, data_dir=args.data_dir)
    s = export_micro(args.source, args.out, args.board, data_dir=args.data_dir, force=args.force,
                     images=images, labels=labels,
                     per_tensor=args.per_tensor, tflm_tolerance=args.tflm_tolerance,
                     tflm_min_top1=args.tflm_min_top1, strict=args.strict)
    a, c, f = s["arena"], s["tflm_check"], s["fold"]
    print(f"model {s['model_bytes']} B, ops {', '.join(s['ops'])}")
    print(f"arena: minimum {a['minimum_bytes']} B, written {a['arena_bytes']} B ({a['margin']})")
    if f["folded"]:
        print(f"pixel map folded into the first conv: outputs within {f['check']['max_steps']} int8 steps "
              f"(mean {f['check']['mean_steps']:.2f}), top-1 agreement {f['check']['top1_agreement']:.3f}, "
              f"arena {f['arena_saved_bytes']} B smaller, host TFLM {f['check']['host_tflm_ms_per_image']['unfolded']:.1f} -> "
              f"{f['check']['host_tflm_ms_per_image']['folded']:.1f} ms/image")
    g = c["gate"]
    exact = "bit exact" if c["bit_exact"] else (f"up to {c['max_abs_diff']} int8 steps apart on "
                                                f"{c['images_differing']} images (first at {c['first_mismatch']['op']})")
    exact += (f", top-1 agreement {c['top1_agreement']:.3f}; passed the gate ("
              + ("strict: bit exact" if g["strict"] else f"<= {g['tolerance_steps']} steps, top-1 agreement "
                 f">= {g['min_top1_agreement']:.3f}") + ")")
    pt = f.get("per_tensor")
    if pt:
        print(f"per-tensor weights ({pt['mode']}, {pt['channels']} channels): {pt['saved_bytes']} B smaller, "
              f"top-1 agreement with per-channel {pt['top1_agreement']:.3f}"
              + (f", per-channel accuracy {pt['per_channel_accuracy']:.3f}" if pt["per_channel_accuracy"] is not None else ""))
    print(f"TFLM vs LiteRT reference kernels on {c['images']} test images: {exact}"
          + (f", int8 accuracy {c['int8_accuracy']:.3f}" if "int8_accuracy" in c else ""))
    print(f"note: {c['board_kernels']}")
    for r in s["budget"]["budgets"]:
        print(f"budget {r['budget']}: {r['used']} of {r['limit']} B ({r['free']} free)")
    print(f"wrote {s['out_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
