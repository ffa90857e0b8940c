"""The paper's model end to end on real images: train sgt-pact-qat, convert it with the shipped
converter, check the int8 file is what a device needs and agrees with its Keras model."""
import json

import numpy as np
import pytest

from kvasir_tf import evaluate, runtime
from kvasir_tf.convert import convert
from kvasir_tf.train import TrainConfig, train


@pytest.fixture(scope="module")
def seg_patches(shared_data, tmp_path_factory):
    """Polyp vs mucosa patches from 80 real Kvasir-SEG images, split by source image."""
    from kvasir_tf.data.kvasir_seg import build_patch_dataset
    out = tmp_path_factory.mktemp("e2e") / "patches"
    build_patch_dataset(shared_data / "kvasir-seg", out, patch_size=64, limit=80, seed=0)
    return out


@pytest.fixture(scope="module")
def paper_run(seg_patches, tmp_path_factory):
    """SGT float from scratch, then SGT-PACT-QAT fine-tuned from it (the project's recipe), tiny."""
    work = tmp_path_factory.mktemp("e2e_runs")
    base = dict(data_dir=str(seg_patches), image_size=48, alpha=0.35, batch_size=16, seed=5,
                bn_momentum=0.9, progress=0)
    sgt = train(TrainConfig(mode="sgt", epochs=8, lr=3e-3, out=str(work / "sgt"), **base))
    return train(TrainConfig(mode="sgt-pact-qat", epochs=3, lr=5e-4, init_from=str(sgt),
                             out=str(work / "qat"), **base))


def test_paper_model_converts_to_a_device_model_that_agrees(paper_run):
    res = convert(paper_run, mode="int8", verbose=False)
    side = res.sidecar
    assert side["quantization"] == "qat" and side["calibration"] is None      # learned ranges only
    assert (side["input"]["scale"], side["input"]["zero_point"]) == (1.0, -128)
    info = runtime.inspect_tflite(res.tflite_path.read_bytes())
    assert info["float_ops"] == [] and "QUANTIZE" not in info["ops"] and "DEQUANTIZE" not in info["ops"]
    config = json.loads((paper_run / "config.json").read_text())
    keras = evaluate.evaluate(paper_run / "checkpoints" / "best.keras", paper_run, "test")
    int8 = evaluate.evaluate(res.tflite_path, paper_run, "test")
    assert keras["n"] == int8["n"] >= 20 and config["mode"] == "sgt-pact-qat"
    agreement = np.mean(np.asarray(keras["predictions"]) == np.asarray(int8["predictions"]))
    assert agreement >= 0.95, (agreement, keras["accuracy"], int8["accuracy"])
    assert keras["accuracy"] > 0.6          # it learned polyp vs mucosa (chance 0.5)
