"""Stratified split: exact per-class proportions, determinism, small classes, manifest."""
import json
import shutil
from collections import Counter

import pytest

from kvasir_tf.data.discovery import discover
from kvasir_tf.data.split import MANIFEST_NAME, load_manifest, save_manifest, stratified_split
from kvasir_tf.errors import DataError


@pytest.fixture
def index(make_dataset_dir):
    return discover(make_dataset_dir({"a": 20, "b": 10, "c": 30}, size=(16, 16)))


def test_stratified_proportions(index):
    sp = stratified_split(index, seed=0)
    for subset, expected in (("train", [16, 8, 24]), ("val", [2, 1, 3]), ("test", [2, 1, 3])):
        c = Counter(sp.labels(subset).tolist())
        assert [c[i] for i in range(3)] == expected, subset
    all_items = sp.train + sp.val + sp.test
    assert sorted(all_items) == sorted(index.items)   # a partition: nothing lost or repeated
    assert sp.paths("test")[0] == index.root / sp.test[0][0]


def test_deterministic_and_seeded(index):
    a, b = stratified_split(index, seed=3), stratified_split(index, seed=3)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    c = stratified_split(index, seed=4)
    assert c.test != a.test


def test_too_few_images_in_a_class(make_dataset_dir):
    ix = discover(make_dataset_dir({"a": 10, "tiny": 2}, size=(16, 16)))
    with pytest.raises(DataError, match=r"class 'tiny' has 2 image\(s\) but a 80/10/10 split needs at "
                                        r"least 3; add images.*small_classes='train'"):
        stratified_split(ix)
    sp = stratified_split(ix, small_classes="train")
    assert Counter(sp.labels("train").tolist())[1] == 2 and 1 not in sp.labels("test")
    assert "all in train" in sp.notes[0]
    sp = stratified_split(ix, small_classes="drop")
    assert 1 not in sp.labels("train")


def test_bad_fractions(index):
    with pytest.raises(DataError, match="summing to 1"):
        stratified_split(index, fractions=(0.8, 0.1, 0.2))


def test_manifest_round_trip(index, tmp_path):
    sp = stratified_split(index, seed=7)
    path = save_manifest(sp, tmp_path / "run")
    assert path == tmp_path / "run" / MANIFEST_NAME
    doc = json.loads(path.read_text())
    assert doc["counts"] == {"train": 48, "val": 6, "test": 6} and doc["seed"] == 7
    back = load_manifest(tmp_path / "run")
    assert (back.train, back.val, back.test) == (sp.train, sp.val, sp.test)
    assert back.class_names == sp.class_names and back.root == index.root.resolve()
    assert (back.labels("test") == sp.labels("test")).all()


def test_manifest_on_another_machine(index, tmp_path):
    sp = stratified_split(index)
    path = save_manifest(sp, tmp_path / "m.json")
    moved = tmp_path / "moved"
    shutil.move(str(index.root), moved)
    with pytest.raises(DataError, match=r"60 of 60 images listed are missing.*pass its new location"):
        load_manifest(path)
    back = load_manifest(path, data_dir=moved)
    assert back.root == moved and back.test == sp.test
    assert all(p.is_file() for p in back.paths("test"))


def test_manifest_with_deleted_image(index, tmp_path):
    """Images deleted after training: a one-line error naming the file, whichever step finds it."""
    from kvasir_tf.data.pipeline import load_images
    sp = stratified_split(index, seed=0)
    path = save_manifest(sp, tmp_path / "run")
    gone = sp.paths("test")[1]
    gone.unlink()
    with pytest.raises(DataError) as err:
        load_manifest(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: 1 of 60 images listed are missing")
    assert f"(e.g. {gone})" in msg and "deleted or renamed since the split was made" in msg
    with pytest.raises(DataError, match="check that --data-dir points at the same dataset"):
        load_manifest(path, data_dir=index.root)
    # Deleted after the manifest was read (e.g. during a long evaluation): the decode names it.
    later = sp.paths("test")[0]
    later.unlink()
    with pytest.raises(DataError) as err:
        load_images(sp.paths("test"), 16)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{later}: file not found (deleted or moved")  # first by path
    assert "(2 of 6 files failed)" in msg


def test_manifest_errors(tmp_path):
    with pytest.raises(DataError, match="no split manifest at"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(DataError, match="not a valid split manifest"):
        load_manifest(tmp_path)


# ----------------------------------------------------------------------------- grouped split
# A patch dataset (kvasir_tf.data.kvasir_seg) cuts several patches of both classes from each
# source image and lists them in _patches.csv; the split must keep each source in one subset.
def _write_patch_dataset(root, n_sources=40, seed=0, unlisted=0):
    """Class folders of patches cut from ``n_sources`` images, with the builder's CSV index."""
    import csv
    import numpy as np
    from tests.conftest import write_image
    from kvasir_tf.data.kvasir_seg import PATCH_INDEX_NAME
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_sources):
        source = f"cju{i:04d}src"
        # 1-3 polyp and 0-2 mucosa patches per image, like the builder after balancing.
        for cls, n in (("polyp", int(rng.integers(1, 4))), ("mucosa", int(rng.integers(0, 3)))):
            for k in range(n):
                name = f"{source}_{k}.png"
                write_image(root / cls / name, 16, 16, seed=len(rows))
                rows.append([cls, name, source, int(rng.integers(0, 200)), int(rng.integers(0, 200)), 96])
    for j in range(unlisted):
        write_image(root / "mucosa" / f"extra{j}.png", 16, 16, seed=10_000 + j)
    rows.sort(key=lambda r: (r[0], r[1]))
    with open(root / PATCH_INDEX_NAME, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", "file", "source", "x", "y", "side"])
        w.writerows(rows)
    return root


def _sources(index, split, subset):
    return {index.group_of(rel) for rel, _ in split.subset(subset)}


def _assert_no_shared_source(index, split):
    src = {s: _sources(index, split, s) for s in ("train", "val", "test")}
    assert not src["train"] & src["val"], "a source image is in train and val"
    assert not src["train"] & src["test"], "a source image is in train and test"
    assert not src["val"] & src["test"], "a source image is in val and test"
    assert sorted(split.train + split.val + split.test) == sorted(index.items)


@pytest.fixture
def patch_index(tmp_path):
    return discover(_write_patch_dataset(tmp_path / "patches", n_sources=60, unlisted=3))


def test_discovery_reads_groups(patch_index, tmp_path):
    ix = patch_index
    assert ix.groups is not None and set(ix.groups) == {rel for rel, _ in ix.items}
    assert ix.group_of("polyp/cju0000src_0.png") == "cju0000src"
    assert ix.group_of("mucosa/extra0.png") == "mucosa/extra0.png"    # unlisted: its own group
    assert any("3 of" in w and "not listed" in w for w in ix.warnings)
    root = _write_patch_dataset(tmp_path / "p2", n_sources=3)
    (root / "_patches.csv").unlink()
    assert discover(root).groups is None                             # no index: item-wise
    (root / "_patches.csv").write_text("class,file\npolyp,a.png\n")
    with pytest.raises(DataError, match=r"_patches.csv: unreadable patch index.*source"):
        discover(root)


def test_grouped_split_keeps_sources_together(patch_index):
    ix = patch_index
    for seed in range(5):
        sp = stratified_split(ix, seed=seed)
        _assert_no_shared_source(ix, sp)
        assert sp.grouped and sp.grouping["groups"] == 63        # 60 sources + 3 unlisted
        assert sum(sp.grouping["per_subset"].values()) == 63
        assert any("grouped by source image" in n for n in sp.notes)
    # The check is not vacuous: the item-wise split of the same files leaks sources.
    import dataclasses
    flat = stratified_split(dataclasses.replace(ix, groups=None), seed=0)
    assert not flat.grouped
    assert _sources(ix, flat, "train") & _sources(ix, flat, "test")


def test_grouped_split_stratified_and_deterministic(patch_index):
    ix = patch_index
    totals = Counter(label for _, label in ix.items)
    a, b = stratified_split(ix, seed=3), stratified_split(ix, seed=3)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert stratified_split(ix, seed=4).test != a.test
    for subset, frac in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        c = Counter(a.labels(subset).tolist())
        for label, n in totals.items():
            # groups hold up to 3 patches of a class: within a few patches of the target
            assert abs(c[label] - frac * n) <= 4, (subset, label, c[label], frac * n)
            assert c[label] >= 1


def test_grouped_split_with_single_item_groups_matches_sizes(index):
    import dataclasses
    singles = dataclasses.replace(index, groups={rel: rel for rel, _ in index.items})
    sp, flat = stratified_split(singles, seed=0), stratified_split(index, seed=0)
    assert sp.grouped and not flat.grouped
    for s in ("train", "val", "test"):
        assert Counter(sp.labels(s).tolist()) == Counter(flat.labels(s).tolist())


def test_grouped_split_small_class(patch_index):
    import dataclasses
    ix = patch_index
    # All mucosa patches from two sources only: too few groups for three subsets.
    groups = {rel: ("g0" if i % 2 else "g1") if rel.startswith("mucosa/") else g
              for i, (rel, g) in enumerate(sorted(ix.groups.items()))}
    few = dataclasses.replace(ix, groups=groups)
    with pytest.raises(DataError, match=r"class 'mucosa' has \d+ image\(s\) from 2 source group\(s\) "
                                        r"but a grouped 80/10/10 split needs at least 3 groups"):
        stratified_split(few)
    sp = stratified_split(few, small_classes="train")
    assert 0 not in sp.labels("test") and 0 not in sp.labels("val")
    _assert_no_shared_source(few, sp)
    sp = stratified_split(few, small_classes="drop")
    assert 0 not in sp.labels("train") and 1 in sp.labels("test")


def test_grouped_manifest_round_trip(patch_index, tmp_path):
    sp = stratified_split(patch_index, seed=1)
    path = save_manifest(sp, tmp_path / "run")
    doc = json.loads(path.read_text())
    assert doc["grouping"]["by"] == "source" and doc["grouping"]["groups"] == 63
    back = load_manifest(tmp_path / "run")
    assert (back.train, back.val, back.test) == (sp.train, sp.val, sp.test)
    assert back.grouped and back.grouping == sp.grouping
    # A manifest from before grouped splits (no "grouping" key) still loads, as item-wise.
    del doc["grouping"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    old = load_manifest(tmp_path / "old.json")
    assert not old.grouped and old.test == sp.test
    (tmp_path / "bad.json").write_text(json.dumps({**doc, "grouping": [1]}))
    with pytest.raises(DataError, match="not a valid split manifest"):
        load_manifest(tmp_path / "bad.json")


def test_cli_split_reports_grouping(patch_index, tmp_path, capsys):
    from kvasir_tf.data.cli import main
    assert main(["split", str(patch_index.root), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "grouped by source image: 63 groups" in out
    assert load_manifest(tmp_path / "run").grouped


def test_real_patches_grouped_split(shared_data, tmp_path):
    """Patches built from 15 real Kvasir-SEG images: no source image in two subsets."""
    import csv
    from kvasir_tf.data.kvasir_seg import PATCH_INDEX_NAME, build_patch_dataset
    summary = build_patch_dataset(shared_data / "kvasir-seg", tmp_path / "patches", patch_size=32,
                                  limit=15)
    ix = discover(tmp_path / "patches")
    with open(tmp_path / "patches" / PATCH_INDEX_NAME, newline="") as fh:
        source = {f"{r['class']}/{r['file']}": r["source"] for r in csv.DictReader(fh)}
    assert set(source) == {rel for rel, _ in ix.items} and not ix.warnings
    assert len(set(source.values())) == summary.images_used
    sp = stratified_split(ix, seed=0)
    subsets = {s: {source[rel] for rel, _ in sp.subset(s)} for s in ("train", "val", "test")}
    assert not subsets["train"] & subsets["test"] and not subsets["train"] & subsets["val"]
    assert not subsets["val"] & subsets["test"]
    assert sp.grouping["groups"] == summary.images_used
    for s in ("train", "val", "test"):
        assert set(sp.labels(s).tolist()) == {0, 1}, s   # both classes everywhere
