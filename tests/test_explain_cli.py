"""kvasir-explain end to end on a run whose model detects a bright spot, its int8 export, the outputs,
bad inputs, and report.html rendered in headless Chromium."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import kvasir_tf  # noqa: F401

SIZE = 32
SPOT = 4
PER_CLASS = 8


def spot_model():
    """Class 'lesion' iff some place is much brighter than mid grey: 1x1 conv -> global max -> softmax."""
    import tensorflow as tf
    from kvasir_tf.model import Preprocess
    L = tf.keras.layers
    i = tf.keras.Input((SIZE, SIZE, 3), name="pixels")
    x = Preprocess(name="preprocess")(i)
    x = L.Conv2D(1, 1, name="brightness")(x)
    x = L.ReLU(6.0, name="out_relu")(x)
    x = L.GlobalMaxPooling2D()(x)
    out = L.Dense(2, activation="softmax", name="predictions")(x)
    m = tf.keras.Model(i, out)
    m.get_layer("brightness").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32), np.array([-0.2], np.float32)])
    # classes in folder order: 0 = lesion, 1 = plain
    m.get_layer("predictions").set_weights([np.array([[4.0, -4.0]], np.float32), np.array([-1.2, 1.2], np.float32)])
    return m


def make_dataset(root: Path):
    """'lesion': a bright square at a random place, its mask in _masks/; 'plain': dark noise only."""
    import cv2
    rng = np.random.default_rng(0)
    for cls in ("lesion", "plain"):
        (root / cls).mkdir(parents=True)
        (root / "_masks" / cls).mkdir(parents=True)
        for i in range(PER_CLASS):
            img = rng.integers(20, 90, (SIZE, SIZE, 3)).astype(np.uint8)
            mask = np.zeros((SIZE, SIZE), np.uint8)
            if cls == "lesion":
                y, x = rng.integers(0, SIZE - SPOT, 2)
                img[y:y + SPOT, x:x + SPOT] = rng.integers(235, 256, (SPOT, SPOT, 3))
                mask[y:y + SPOT, x:x + SPOT] = 255
            cv2.imwrite(str(root / cls / f"{i:02d}.png"), img)
            cv2.imwrite(str(root / "_masks" / cls / f"{i:02d}.png"), mask)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from kvasir_tf.convert import convert
    from kvasir_tf.data.discovery import discover
    from kvasir_tf.data.split import save_manifest, stratified_split
    from kvasir_tf.model_io import save_model
    base = tmp_path_factory.mktemp("explain")
    data = make_dataset(base / "data")
    split = stratified_split(discover(data), fractions=(0.5, 0.25, 0.25), seed=0)
    run = base / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_manifest(split, run)
    model = spot_model()
    save_model(model, run / "checkpoints" / "best.keras")
    (run / "config.json").write_text(json.dumps({"mode": "float", "image_size": SIZE,
                                                 "class_names": split.class_names, "data_dir": str(data)}))
    convert(run, run / "export" / "model_int8.tflite", "int8", verbose=False, allow_fewer=True)
    return run


@pytest.fixture(scope="module")
def explained(run, tmp_path_factory):
    from kvasir_tf.explain.cli import main
    out = tmp_path_factory.mktemp("out")
    rc = main([str(run), "--out", str(out), "--limit", "2", "--methods", "saliency,gradcam++,occlusion,rise",
               "--rise-masks", "120", "--faithfulness", "2", "--no-progress"])
    assert rc == 0
    return out


def test_outputs_and_localisation_of_the_spot(explained):
    doc = json.loads((explained / "saliency.json").read_text())
    assert doc["images"]["n"] == 4 and doc["images"]["with_masks"] == 2
    assert set(doc["models"]) == {"keras", "int8"}
    assert doc["models"]["keras"]["accuracy"] == 1.0 and doc["models"]["int8"]["accuracy"] == 1.0
    assert set(doc["localisation"]["int8"]) == {"occlusion", "rise"}          # no gradients for int8
    for model, method in (("keras", "saliency"), ("keras", "occlusion"), ("int8", "occlusion"), ("int8", "rise")):
        loc = doc["localisation"][model][method]
        assert loc["pointing"]["mean"] == 1.0 and loc["pointing"]["n"] == 2, (model, method)
        assert loc["energy_in_mask"]["mean"] > 2 * loc["mask_fraction"]["mean"], (model, method)
    agree = doc["agreement"]["keras vs int8"]
    assert agree["label"] == "Keras vs int8" and set(agree) == {"label", "occlusion", "rise"}
    assert agree["occlusion"]["spearman"]["mean"] > 0.5
    faith = doc["faithfulness"]["keras"]["occlusion"]
    assert faith["deletion_auc"]["n"] == 2
    md = (explained / "saliency.md").read_text()
    assert "## Localisation" in md and "Keras vs int8" in md


def test_figures_are_real_pngs(explained):
    import cv2
    for name in ("fig2_panel.png", "grid_saliency.png", "grid_gradcampp.png", "grid_occlusion.png",
                 "grid_rise.png", "deletion_insertion.png"):
        img = cv2.imread(str(explained / name))
        assert img is not None and img.shape[0] > 150 and img.shape[1] > 300, name
        assert img.std() > 10, name            # not a blank canvas


def test_report_html_is_self_contained(explained):
    text = (explained / "report.html").read_text()
    assert text.count("<img") >= 6 and text.count('src="data:image/png;base64,') == text.count("<img")
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_report_renders_in_chromium_with_every_image_loaded(explained, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: run tools/toolchains/chromium.sh (Debian package chromium)")
    probe = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
             "document.title='LOADED '+i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length;});</script>")
    page = tmp_path / "probe.html"
    page.write_text((explained / "report.html").read_text().replace("</body>", probe + "</body>"))
    out = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<title>LOADED " in out.stdout, out.stderr[-500:]
    loaded, total = out.stdout.split("<title>LOADED ")[1].split("</title>")[0].split("/")
    assert int(total) >= 6 and loaded == total


def _one_line_error(capsys, argv):
    from kvasir_tf.explain.cli import main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_unknown_method_and_model(run, capsys, tmp_path):
    assert "--methods" in _one_line_error(capsys, [str(run), "--out", str(tmp_path), "--methods", "lime"])
    assert "int8" in _one_line_error(capsys, [str(run), "--out", str(tmp_path), "--models", "fp32"])


def test_run_without_test_split(run, capsys, tmp_path):
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    doc = json.loads((bad / "split.json").read_text())
    doc["train"] += doc["test"]
    doc["test"] = []
    (bad / "split.json").write_text(json.dumps(doc))
    assert "no test images" in _one_line_error(capsys, [str(bad), "--out", str(tmp_path / "o"), "--no-progress"])


def test_mask_of_another_size(run, capsys, tmp_path):
    import cv2
    from kvasir_tf.data.split import load_manifest
    data = tmp_path / "data"
    shutil.copytree(load_manifest(run).root, data)
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    doc = json.loads((bad / "split.json").read_text())
    doc["root"] = str(data)
    (bad / "split.json").write_text(json.dumps(doc))
    rel = next(r for r, y in doc["test"] if r.startswith("lesion"))
    cv2.imwrite(str(data / "_masks" / Path(rel).with_suffix(".png")), np.zeros((10, 12), np.uint8))
    err = _one_line_error(capsys, [str(bad), "--out", str(tmp_path / "o"), "--no-progress", "--methods", "occlusion"])
    assert "mask" in err and "12x10" in err


def test_compare_hook_prints_the_summary_and_writes_report_html(run, tmp_path):
    from kvasir_tf.compare.saliency import saliency_summary
    folder = tmp_path / "cmp"
    shutil.copytree(run, folder)
    text = saliency_summary(folder, limit=2)
    assert text.startswith("Saliency (mean [95 % CI]):")
    assert "keras" in text and "int8" in text and "pointing 1.00" in text
    assert "Keras vs int8" in text
    assert (folder / "report.html").is_file() and (folder / "explain" / "saliency.json").is_file()
    assert saliency_summary(tmp_path / "nothing").startswith("Saliency: not computed (")
