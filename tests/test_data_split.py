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


def test_manifest_errors(tmp_path):
    with pytest.raises(DataError, match="no split manifest at"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(DataError, match="not a valid split manifest"):
        load_manifest(tmp_path)
