"""``kvasir-explain`` / ``python -m kvasir_tf.explain``: saliency maps of a run or comparison folder.

    kvasir-explain runs/compare [--out DIR] [--limit 10] [--methods saliency,occlusion]
                   [--models float-keras,sgt-pact-qat-int8] [--seg-dir ../shared/data/kvasir-seg]

Writes PNG grids (one per method), a Fig. 2-style panel, the deletion/insertion curves,
``saliency.md``/``.json`` and a self-contained ``report.html`` into ``DIR`` (default FOLDER/explain,
or FOLDER/explain-seg with --seg-dir).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import kvasir_tf
from kvasir_tf.errors import KvasirError, cli

DEFAULT_OUT, SEG_OUT = "explain", "explain-seg"
PANEL_NAME, CURVES_NAME = "fig2_panel.png", "deletion_insertion.png"


def grid_name(method: str) -> str:
    return f"grid_{method.replace('++', 'pp')}.png"


def explain(folder, out_dir=None, config=None, progress=True, html=True) -> dict:
    """Run the study and write every output; returns {"results", "files", "study", "figures"}
    (``figures``: {title: png path}). ``html`` False: no report.html (a caller assembles its own
    from the results, as the comparison does)."""
    from kvasir_tf.explain import figures, summary
    from kvasir_tf.explain import html as html_report
    from kvasir_tf.explain.study import StudyConfig, run_study
    config = config or StudyConfig()
    folder = Path(folder)
    out = Path(out_dir) if out_dir else folder / (SEG_OUT if config.seg_dir else DEFAULT_OUT)
    study = run_study(folder, config, progress=progress)
    files = summary.write(study.results, out)
    pngs = {f"Fig. 2-style panel": figures.panel(study, out / PANEL_NAME)}
    for method in config.methods:
        pngs[f"{method} for every model"] = figures.grid(study, method, out / grid_name(method))
    pngs["mean deletion and insertion curves"] = figures.faithfulness_plot(study, out / CURVES_NAME)
    pngs = {t: p for t, p in pngs.items() if p is not None}
    files["figures"] = list(pngs.values())
    if html:
        files["html"] = html_report.write_report(study.results, pngs, out / html_report.REPORT_NAME)
    return {"results": study.results, "files": files, "study": study, "figures": pngs}


def _names(text):
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else None


def parser(prog="kvasir-explain") -> argparse.ArgumentParser:
    from kvasir_tf.explain import perturbation, study
    d = study.StudyConfig()
    ap = argparse.ArgumentParser(prog=prog, description="Saliency maps of every model of a run or "
                                 "comparison folder: PNG grids, saliency.md/.json, report.html.")
    ap.add_argument("folder", help="a run directory (runs/NAME) or a comparison folder (kvasir-compare --out)")
    ap.add_argument("--out", help=f"output folder (default FOLDER/{DEFAULT_OUT}, FOLDER/{SEG_OUT} with --seg-dir)")
    ap.add_argument("--limit", type=int, default=d.limit,
                    help=f"test images per class (Kvasir-SEG frames: in total) (default {d.limit})")
    ap.add_argument("--methods", default=",".join(d.methods),
                    help=f"comma-separated, from {', '.join(study.METHODS)} (default {','.join(d.methods)})")
    ap.add_argument("--models", help="comma-separated model names (default: every Keras model and every "
                                     "int8 .tflite); the names are printed on a mistake")
    ap.add_argument("--seg-dir", help="explain Kvasir-SEG frames with their expert masks instead of the test "
                                      "split (only the test split's source frames for a patch-trained run)")
    ap.add_argument("--target", choices=study.TARGETS, default=d.target,
                    help="class a map explains: the true label where known, or the prediction (default label)")
    ap.add_argument("--top-k", type=float, default=d.top_k, help=f"%% of pixels in a top-k region (default {d.top_k:g})")
    ap.add_argument("--faithfulness", type=int, default=d.faithfulness,
                    help=f"images per model and method with deletion/insertion curves (default {d.faithfulness})")
    ap.add_argument("--rise-masks", type=int, default=d.rise_masks, help=f"RISE masks per image (default {d.rise_masks})")
    ap.add_argument("--batch-size", type=int, default=d.batch_size,
                    help="images per interpreter invoke / Keras call for occlusion and RISE (default: "
                         f"{perturbation.MAX_BATCH} at 96 px, fewer for larger images: batch x pixels <= "
                         f"{perturbation.BATCH_PIXELS})")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    kvasir_tf.add_verbose_flag(ap)
    return ap


@cli
def main(argv=None) -> int:
    from kvasir_tf.explain import summary
    from kvasir_tf.explain.study import StudyConfig
    args = parser().parse_args(argv)
    if (args.batch_size is not None and args.batch_size < 1) or args.rise_masks < 2 or args.faithfulness < 0:
        raise KvasirError("--batch-size must be >= 1, --rise-masks >= 2 and --faithfulness >= 0")
    config = StudyConfig(methods=_names(args.methods) or (), models=_names(args.models), limit=args.limit,
                         top_k=args.top_k, faithfulness=args.faithfulness, rise_masks=args.rise_masks,
                         batch_size=args.batch_size, target=args.target, seg_dir=args.seg_dir, seed=args.seed)
    result = explain(args.folder, args.out, config, progress=not args.no_progress)
    print(summary.markdown(result["results"]))
    for f in [result["files"]["markdown"], result["files"]["json"], *result["files"]["figures"],
              result["files"]["html"]]:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
