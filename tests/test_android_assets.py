"""kvasir-android-assets: model + sidecar + labels into the app's assets, refused unless consistent."""
import json
import shutil
from pathlib import Path

import pytest

from kvasir_tf import artifact
from kvasir_tf.errors import KvasirError

REPO = Path(__file__).resolve().parents[1]


def tool():
    from kvasir_tf import android_assets
    return android_assets


@pytest.fixture
def run(tmp_path):
    """A run directory (config.json, split.json) and export/ holding a real int8 model from kvasir_tf.convert."""
    from tests import convert_fixtures as cf
    tflite = cf.converted("int8")
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    for name in ("split.json", "config.json"):
        shutil.copy(cf.run_dir() / name, run / name)
    for src in (tflite, artifact.sidecar_path_for(tflite), tflite.parent / artifact.LABELS_NAME):
        shutil.copy(src, run / "export" / src.name)
    return run


def test_install_from_a_run_copies_checked_files_and_a_test_image(run, tmp_path):
    from kvasir_tf.data.split import load_manifest
    T = tool()
    assets = tmp_path / "assets"
    r = T.install_assets(run, assets)
    src = next((run / "export").glob("*.tflite"))
    side = json.loads(artifact.sidecar_path_for(src).read_text())
    assert r["model"] == src and r["sha256"] == side["sha256"]
    assert artifact.sha256_file(assets / "model.tflite") == side["sha256"]
    assert json.loads((assets / "model.json").read_text()) == side
    assert (assets / "labels.txt").read_text().splitlines() == side["class_names"]
    first_test = load_manifest(run).paths("test")[0]
    bench = assets / f"bench_image{first_test.suffix.lower()}"
    assert bench.read_bytes() == first_test.read_bytes()
    # A second install with an explicit image replaces the first one's.
    other = load_manifest(run).paths("test")[1]
    T.install_assets(run / "export", assets, test_image=other)
    assert [p.name for p in assets.glob("bench_image.*")] == [bench.name]
    assert bench.read_bytes() == other.read_bytes()


def test_a_model_the_sidecar_does_not_describe_is_not_copied(run, tmp_path):
    model = next((run / "export").glob("*.tflite"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(KvasirError, match="sha256 differs"):
        tool().install_assets(run, tmp_path / "assets")
    assert not (tmp_path / "assets").exists()


def test_labels_out_of_order_are_refused(run, tmp_path):
    labels = run / "export" / "labels.txt"
    labels.write_text("\n".join(reversed(labels.read_text().splitlines())) + "\n")
    with pytest.raises(KvasirError, match="class_names in order"):
        tool().install_assets(run, tmp_path / "assets")


def test_a_float_model_is_refused_with_the_fix(run, tmp_path):
    side_path = next((run / "export").glob("*.json"))
    side = json.loads(side_path.read_text())
    side["input"].update(dtype="float32", scale=None, zero_point=None)
    side_path.write_text(json.dumps(side))
    with pytest.raises(KvasirError, match="--int8"):
        tool().install_assets(run, tmp_path / "assets")


def test_cli_one_line_errors_and_success(run, tmp_path, capsys):
    T = tool()
    assert T.main([str(tmp_path / "nope"), str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "runs/NAME" in err
    export = run / "export"
    src = next(export.glob("*.tflite"))
    shutil.copy(src, export / "copy.tflite")
    shutil.copy(artifact.sidecar_path_for(src), export / "copy.json")
    assert T.main([str(run), str(tmp_path / "a")]) == 2
    assert "several int8 models" in capsys.readouterr().err
    assert T.main([str(src), str(tmp_path / "a"), "--test-image", str(src)]) == 2
    assert "not a .jpg or .png" in capsys.readouterr().err
    assert T.main([str(src), str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "installed" in out and (tmp_path / "a" / "model.tflite").is_file()
