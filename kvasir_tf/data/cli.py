"""``kvasir-data``: inspect a dataset, write a split manifest, download Kvasir v2.

Subcommands: ``summary DIR``, ``split DIR --out RUN_DIR``, ``download DEST``, and the
Kvasir-SEG ``patches`` builder of :mod:`kvasir_tf.data.kvasir_seg`.
"""
import argparse
import collections
import logging
import sys
from pathlib import Path

from kvasir_tf.data import kvasir_seg
from kvasir_tf.data.discovery import DatasetIndex, discover
from kvasir_tf.data.imageio import header_size
from kvasir_tf.errors import cli

# name -> (add_arguments(parser), run(args) -> int): subcommands owned by other modules.
EXTRA_COMMANDS = {"patches": (kvasir_seg.add_patch_args, kvasir_seg.run_patches)}


def format_summary(index: DatasetIndex, *, sizes: bool = True, max_skipped: int = 10) -> str:
    """A human-readable table: classes and counts, image sizes seen, skipped files."""
    counts = index.counts()
    width = max([len("class")] + [len(n) for n in index.class_names])
    lines = [f"dataset {index.root} (layout: {index.layout})",
             f"  {'#':>2}  {'class':<{width}}  {'images':>6}"]
    for i, (name, n) in enumerate(zip(index.class_names, counts)):
        lines.append(f"  {i:>2}  {name:<{width}}  {n:>6}")
    lines.append(f"      {'total':<{width}}  {sum(counts):>6}")
    if sizes and index.items:
        seen = collections.Counter(header_size(index.root / rel) for rel, _ in index.items)
        known = [(s, c) for s, c in seen.most_common() if s is not None]
        top = ", ".join(f"{w}x{h} ({c})" for (w, h), c in known[:5])
        more = f" and {len(known) - 5} more" if len(known) > 5 else ""
        lines.append(f"  image sizes: {len(known)} distinct: {top}{more}")
    for w in index.warnings:
        lines.append(f"  warning: {w}")
    if index.skipped:
        lines.append(f"  skipped {len(index.skipped)} file(s):")
        for rel, reason in index.skipped[:max_skipped]:
            lines.append(f"    {rel}: {reason}")
        if len(index.skipped) > max_skipped:
            lines.append(f"    ... and {len(index.skipped) - max_skipped} more")
    return "\n".join(lines)


def _parser():
    p = argparse.ArgumentParser(prog="kvasir-data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summary", help="class counts, image sizes, skipped files")
    s.add_argument("data_dir", help="folder with class folders (or the parent of kvasir-dataset-v2/)")
    s.add_argument("--skip-unknown", action="store_true",
                   help="ignore folders that are not Kvasir v2 classes (default: use them)")
    s.add_argument("--no-validate", action="store_true", help="skip the header checks")
    sp = sub.add_parser("split", help="write a stratified train/val/test manifest (split.json)")
    sp.add_argument("data_dir")
    sp.add_argument("--out", required=True, help="run directory (or .json file) for the manifest")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1))
    sp.add_argument("--small-classes", choices=("error", "train", "drop"), default="error",
                    help="classes too small for every subset: fail (default), put in train, or drop")
    sp.add_argument("--skip-unknown", action="store_true")
    d = sub.add_parser("download", help="download and unpack the public Kvasir v2 archive (~2.3 GB)")
    d.add_argument("dest")
    d.add_argument("--sha256", default=None, help="expected SHA-256 of the zip, if you have one")
    d.add_argument("--archive", default=None, help="use an already downloaded zip instead")
    d.add_argument("--url", default=None)
    for name, (add_args, _run) in EXTRA_COMMANDS.items():
        add_args(sub.add_parser(name))
    return p


@cli
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    unknown = "skip" if getattr(args, "skip_unknown", False) else "use"
    if args.cmd == "summary":
        logging.getLogger("kvasir_tf.data").setLevel(logging.ERROR)  # warnings are in the table
        index = discover(args.data_dir, unknown_classes=unknown, validate=not args.no_validate)
        print(format_summary(index))
        return 0
    if args.cmd == "split":
        from kvasir_tf.data.split import save_manifest, stratified_split
        index = discover(args.data_dir, unknown_classes=unknown)
        split = stratified_split(index, args.fractions, args.seed, small_classes=args.small_classes)
        path = save_manifest(split, args.out)
        print(f"wrote {path}: train {len(split.train)}, val {len(split.val)}, test {len(split.test)}")
        for note in split.notes:
            print(f"  note: {note}")
        return 0
    if args.cmd == "download":
        from kvasir_tf.data import download
        if args.archive:
            dest = Path(args.dest)
            dest.mkdir(parents=True, exist_ok=True)
            target = dest / download.ARCHIVE_NAME
            if Path(args.archive).resolve() != target.resolve():
                import shutil
                shutil.copyfile(args.archive, target)
        out = download.download_kvasir_v2(args.dest, url=args.url or download.KVASIR_V2_URL,
                                          sha256=args.sha256)
        print(f"Kvasir v2 is in {out}; next: kvasir-data summary {out}")
        return 0
    return EXTRA_COMMANDS[args.cmd][1](args)


if __name__ == "__main__":
    sys.exit(main())
