"""Input-pipeline throughput on the real images in ../shared/data (not a timed test).

Builds one Kvasir-v2-layout dataset from symlinks (Kvasir-SEG images as ``polyps`` plus
the partial Kvasir v2 classes), then measures images/s for the first (decoding) epoch
and for cached epochs, with and without augmentation. Writes bench_results/data.json.
Goal: cached epochs >= 3x the ~7 img/s the saliency-guided QAT step consumes at 224 px.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from kvasir_tf.data import pipeline
from kvasir_tf.data.discovery import discover
from kvasir_tf.data.split import stratified_split

SHARED = REPO.parent / "shared" / "data"
TRAIN_STEP_IMG_S = 7.0   # what SGT-PACT-QAT consumes at 224 px on 2 cores (issue 2)


def _layout(tmp: Path) -> Path:
    root = tmp / "kvasir-dataset-v2"
    root.mkdir()
    os.symlink(SHARED / "kvasir-seg" / "images", root / "polyps")
    for d in sorted((SHARED / "kvasir-v2-partial").iterdir()):
        if d.is_dir():
            os.symlink(d, root / d.name)
    return root


def _epoch(ds) -> tuple:
    t, n = time.perf_counter(), 0
    for _, y in ds:
        n += int(y.shape[0])
    return n, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="cached epochs to average")
    ap.add_argument("--out", default=str(REPO / "bench_results" / "data.json"))
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"error: real images not found at {SHARED}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index = discover(_layout(tmp))
        split = stratified_split(index, fractions=(1.0, 0.0, 0.0))
        n_files = len(split.train)
        cache = tmp / "cache"
        for augment in (True, False):
            t0 = time.perf_counter()
            ds = pipeline.make_dataset(split, "train", args.size, args.batch, augment=augment,
                                       cache_dir=cache)
            build = time.perf_counter() - t0
            n, first = _epoch(ds)
            cached = [_epoch(ds) for _ in range(args.epochs)]
            cached_rate = sum(c[0] for c in cached) / sum(c[1] for c in cached)
            rows.append({
                "augment": augment,
                "images": n,
                "first_epoch_s": round(build + first, 3),
                "decode_build_s": round(build, 3),
                "first_epoch_img_s": round(n / (build + first), 1),
                "cached_epoch_img_s": round(cached_rate, 1),
                "cache_source": "decode" if augment else "cache file",
            })
    result = {"image_size": args.size, "batch_size": args.batch, "files": n_files,
              "cpu_count": os.cpu_count(), "train_step_img_s": TRAIN_STEP_IMG_S,
              "goal_cached_img_s": 3 * TRAIN_STEP_IMG_S, "rows": rows}
    print(f"{n_files} real images at {args.size} px, batch {args.batch}, {os.cpu_count()} CPUs")
    print(f"{'augment':<8} {'first epoch (source)':<36} {'cached epochs':>14}")
    for r in rows:
        src = f"{r['first_epoch_img_s']:>8.1f} img/s ({r['first_epoch_s']:.1f} s, {r['cache_source']})"
        print(f"{str(r['augment']):<8} {src:<36} {r['cached_epoch_img_s']:>8.1f} img/s")
    ok = all(r["cached_epoch_img_s"] >= 3 * TRAIN_STEP_IMG_S for r in rows)
    print(f"goal: cached >= {3 * TRAIN_STEP_IMG_S:.0f} img/s: {'met' if ok else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
