"""kvasir-data CLI and the download helper (local file:// archives and a fake offline urlopen)."""
import hashlib
import io
import json
import re
import urllib.error
import zipfile

import pytest

from kvasir_tf.data import download
from kvasir_tf.data.classes import KVASIR_V2_CLASSES
from kvasir_tf.data.cli import format_summary, main
from kvasir_tf.data.discovery import discover
from kvasir_tf.errors import DataError
from tests.conftest import write_image


def test_summary_table(make_dataset_dir, capsys):
    root = make_dataset_dir({"apple": 3, "pear": 2}, size=(40, 30))
    write_image(root / "pear" / "big.png", 50, 20)
    (root / "pear" / "x.txt").write_text("x")
    assert main(["summary", str(root)]) == 0
    out = capsys.readouterr().out
    assert "layout: class-folders" in out
    assert "   0  apple       3" in out and "   1  pear        3" in out and "total       6" in out
    assert "image sizes: 2 distinct: 40x30 (5), 50x20 (1)" in out
    assert "skipped 1 file(s):" in out and "pear/x.txt: not an image file" in out


def test_summary_lists_too_small_images(make_dataset_dir, capsys):
    import cv2
    import numpy as np
    root = make_dataset_dir({"apple": 3, "pear": 2}, size=(40, 30))
    cv2.imwrite(str(root / "pear" / "dot.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(root / "apple" / "sliver.jpg"), np.zeros((12, 4000, 3), np.uint8))
    assert main(["summary", str(root)]) == 0
    out = capsys.readouterr().out
    assert "   0  apple       3" in out and "   1  pear        2" in out
    assert "skipped 2 image(s) smaller than 16 px on the shorter side, e.g. apple/sliver.jpg" in out
    assert "skipped 2 file(s):" in out
    assert "    apple/sliver.jpg: image too small (4000x12: shorter side 12 px < 16 px" in out
    assert "    pear/dot.png: image too small (1x1: shorter side 1 px" in out


def test_format_summary_real(shared_data):
    text = format_summary(discover(shared_data / "kvasir-v2-partial"))
    assert re.search(r"\n\s+3  normal-cecum\s+250\n", text) and "720x576 (251), 1280x1024 (1)" in text


def test_summary_missing_dir_is_one_line_error(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data directory") and "\n" not in err


def test_split_command(make_dataset_dir, tmp_path, capsys):
    root = make_dataset_dir({"a": 10, "b": 10}, size=(16, 16))
    assert main(["split", str(root), "--out", str(tmp_path / "run"), "--seed", "2"]) == 0
    doc = json.loads((tmp_path / "run" / "split.json").read_text())
    assert doc["counts"] == {"train": 16, "val": 2, "test": 2} and doc["seed"] == 2
    assert main(["split", str(make_dataset_dir({"c": 2}, name="tiny")), "--out", str(tmp_path)]) == 2
    assert "class 'c' has 2 image(s)" in capsys.readouterr().err


def _fake_archive(path, classes=KVASIR_V2_CLASSES):
    with zipfile.ZipFile(path, "w") as zf:
        for c in classes:
            zf.writestr(f"kvasir-dataset-v2/{c}/a.jpg", b"\xff\xd8\xff\xe0 not really \xff\xd9")
    return path


def test_download_from_local_url(tmp_path):
    src = _fake_archive(tmp_path / "src.zip")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    out = download.download_kvasir_v2(tmp_path / "dest", url=src.as_uri(), sha256=sha, progress=False)
    assert out == tmp_path / "dest" / "kvasir-dataset-v2"
    assert sorted(p.name for p in out.iterdir()) == list(KVASIR_V2_CLASSES)
    assert not (tmp_path / "dest" / "kvasir-dataset-v2.zip.part").exists()


def test_download_checksum_mismatch(tmp_path):
    src = _fake_archive(tmp_path / "src.zip")
    with pytest.raises(DataError, match=r"SHA-256 [0-9a-f]+ does not match the expected 00ff"):
        download.download_kvasir_v2(tmp_path / "d", url=src.as_uri(), sha256="00ff", progress=False)


def test_download_wrong_archive(tmp_path):
    src = _fake_archive(tmp_path / "src.zip", classes=["cats"])
    with pytest.raises(DataError, match="does not look like the Kvasir v2 archive"):
        download.download_kvasir_v2(tmp_path / "d", url=src.as_uri(), progress=False)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "kvasir-dataset-v2.zip").write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(DataError, match="not a complete zip archive"):
        download.download_kvasir_v2(tmp_path / "e", progress=False)


def test_download_offline(tmp_path, monkeypatch, capsys):
    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"cannot reach https://datasets\.simula\.no/.*internet connection"):
        download.download_kvasir_v2(tmp_path, progress=False)
    assert main(["download", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach")


def test_download_resumes_partial_file(tmp_path, monkeypatch):
    data = _fake_archive(tmp_path / "src.zip").read_bytes()
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "kvasir-dataset-v2.zip.part").write_bytes(data[:100])
    seen = {}

    class Resp(io.BytesIO):
        status = 206
        headers = {"Content-Length": str(len(data) - 100)}

    def fake(req, timeout=None):
        seen["range"] = req.get_header("Range")
        return Resp(data[100:])

    monkeypatch.setattr(download.urllib.request, "urlopen", fake)
    out = download.download_kvasir_v2(dest, progress=False)
    assert seen["range"] == "bytes=100-"
    assert (dest / "kvasir-dataset-v2.zip").read_bytes() == data and out.is_dir()
