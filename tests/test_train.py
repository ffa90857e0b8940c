"""python -m kvasir_tf.train: run directory, resume after SIGKILL, Ctrl-C, NaN stop, --init-from.

Everything trains MobileNetV2 alpha 0.35 at 32 px on 5 synthetic images per class (24 train
/ 8 val / 8 test), batch 8: the cost is mostly tracing the train step once per process.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import kvasir_tf  # noqa: F401
from kvasir_tf import callbacks as CB
from kvasir_tf import config as C
from kvasir_tf import qat as Q
from kvasir_tf import rundir
from kvasir_tf import train as T
from kvasir_tf.model_io import load_model
from kvasir_tf.errors import KvasirError

import tensorflow as tf  # noqa: E402

EPOCHS = 5
TINY = ["--image-size", "32", "--alpha", "0.35", "--batch-size", "8", "--seed", "3",
        "--bn-momentum", "0.9", "--lr", "1e-3", "--progress", "0"]
PER_CLASS, SIZE = 5, 40


def _tiny_data(root: Path) -> Path:
    from kvasir_tf.data import synthetic
    return synthetic.generate(root, per_class=PER_CLASS, size=SIZE, seed=0)


def _history(run: Path) -> list:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def _ckpt_vars(path) -> dict:
    """All float/int tensors of a tf.train.Checkpoint (model, optimizer slots, eps, epoch)."""
    reader = tf.train.load_checkpoint(str(path))
    out = {}
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
            out[name] = value
    return out


def cfg_from(argv):
    return C.config_from_args(T.parser().parse_args(argv))


# ----------------------------------------------------------------------------- fast checks
def test_adam_alpha_lr_scales_only_the_alpha_step():
    a, w = tf.Variable(1.0), tf.Variable(1.0)
    opt = T.AdamWithAlphaLR(1e-2, alpha_vars=[a], alpha_lr_ratio=10.0)
    for _ in range(3):
        opt.apply_gradients([(tf.constant(0.5), a), (tf.constant(0.5), w)])
    # Adam's step with a constant gradient is lr per step; alpha's is 10x.
    assert 1.0 - float(w.numpy()) == pytest.approx(3e-2, rel=1e-3)
    assert 1.0 - float(a.numpy()) == pytest.approx(3e-1, rel=1e-3)


def test_guard_stops_on_collapsed_alpha_and_nan():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    alphas = [tf.Variable(CB.ALPHA_MIN), tf.Variable(CB.ALPHA_MIN * 1.5)]
    guard = CB.Guard(alphas)
    guard.set_model(model)
    guard.on_epoch_end(0, {"loss": 1.0})
    assert model.stop_training and "alpha collapsed" in guard.reason
    guard = CB.Guard([tf.Variable(6.0)])
    guard.set_model(model)
    model.stop_training = False
    guard.on_train_batch_end(4, {"loss": float("nan"), "mean_alpha": 6.0})
    assert model.stop_training and "loss became nan" in guard.reason and "batch 5" in guard.reason


def test_truncate_history_drops_redone_epochs(tmp_path):
    p = tmp_path / "history.csv"
    p.write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n")
    CB.truncate_history(p, 2)
    assert p.read_text() == "epoch,loss\n0,1.0\n1,0.9\n"


def test_load_run_and_init_from_need_a_run(tmp_path):
    with pytest.raises(KvasirError, match="config.json"):
        rundir.load_run(tmp_path)
    cfg = T.TrainConfig(mode="qat", image_size=32, alpha=0.35, init_from=str(tmp_path))
    with pytest.raises(KvasirError, match="config.json"):
        T.build_model(cfg, 8)


# ----------------------------------------------------------------------------- one demo run
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The paper's mode via ``--demo`` (demo data made tiny), EPOCHS epochs, in-process."""
    from kvasir_tf.data import synthetic
    work = tmp_path_factory.mktemp("demo")
    cwd = os.getcwd()
    orig = synthetic.ensure_demo_data
    synthetic.ensure_demo_data = lambda out_dir: _tiny_data(Path(out_dir))
    os.chdir(work)
    try:
        t0 = time.perf_counter()
        rc = T.main(["--demo", "--epochs", str(EPOCHS), *TINY, "--out", "run"])
        print(f"demo run: {time.perf_counter() - t0:.0f}s")
    finally:
        synthetic.ensure_demo_data = orig
        os.chdir(cwd)
    assert rc == 0
    return work / "run"


def test_demo_run_directory_is_complete(demo_run):
    for rel in ["config.json", "split.json", "history.csv", "test_metrics.json", "confusion_matrix.png",
                "checkpoints/best.keras", "checkpoints/last.keras", "checkpoints/state.json",
                "checkpoints/resume/checkpoint"]:
        assert (demo_run / rel).is_file(), rel
    assert list((demo_run / "tb").rglob("events.out.tfevents.*"))
    cfg = json.loads((demo_run / "config.json").read_text())
    assert cfg["mode"] == "sgt-pact-qat" and cfg["image_size"] == 32 and cfg["alpha"] == 0.35
    assert cfg["bits"] == 8 and cfg["seed"] == 3 and len(cfg["class_names"]) == 8
    assert Path(cfg["data_dir"]).name == "demo_data"
    state = json.loads((demo_run / "checkpoints/state.json").read_text())
    assert state["epochs_completed"] == EPOCHS and 1 <= state["best_epoch"] <= EPOCHS


def test_history_logs_every_loss_term(demo_run):
    rows = _history(demo_run)
    cfg = json.loads((demo_run / "config.json").read_text())
    n_alphas = len(Q.pact_alphas(load_model(demo_run / "checkpoints/last.keras")))
    assert n_alphas > 10
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    for col in ["loss", "ce", "kl", "l1", "masked_fraction", "eps", "mean_alpha", "accuracy",
                "val_loss", "val_accuracy"]:
        assert col in rows[0], col
    for r in rows:
        # scope image masks exactly round(0.5 * H * W) pixels of every image, ties or not
        pixels = cfg["image_size"] ** 2
        assert float(r["masked_fraction"]) == pytest.approx(round(0.5 * pixels) / pixels, abs=1e-6)
        assert float(r["kl"]) >= 0 and float(r["eps"]) > 0
        assert CB.ALPHA_MIN <= float(r["mean_alpha"]) <= 6.0 + 1e-3
        # loss = ce + lambda1 * kl + eta * sum(alpha^2)   (lambda2 = 0, lambda1 = 1)
        reg = float(r["loss"]) - float(r["ce"]) - float(r["kl"])
        assert 0 < reg <= cfg["eta"] * n_alphas * 6.0 ** 2 + 1e-4, reg


def test_a_few_epochs_lower_the_loss(tmp_path):
    """The paper's mode on two visually distinct demo classes: 20 steps must cut the CE clearly.

    (On the 8-class fixture run, 40 images at 32 px, the CE of 20 steps wanders around ln 8.)
    """
    from kvasir_tf.data import synthetic
    data = synthetic.generate(tmp_path / "data", per_class=12, size=SIZE, seed=0,
                              classes=("dyed-lifted-polyps", "normal-pylorus"))
    run = tmp_path / "run"
    assert T.main(["--data-dir", str(data), "--epochs", str(EPOCHS), *TINY, "--warmup-epochs", "1",
                   "--out", str(run)]) == 0
    rows = _history(run)
    ce = [float(r["ce"]) for r in rows]
    assert ce[-1] < ce[0] - 0.3, ce
    # --warmup-epochs 1: the first epoch is plain CE (nothing masked), the guided step follows
    assert [float(r["masked_fraction"]) for r in rows] == [0.0] + [0.5] * (EPOCHS - 1)
    assert float(rows[0]["kl"]) == 0.0 and all(float(r["kl"]) > 0 for r in rows[1:])


def test_test_metrics_match_the_saved_best_model(demo_run):
    m = json.loads((demo_run / "test_metrics.json").read_text())
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (8, 8) and cm.sum() == m["n"] == 8      # 1 test image per class
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    for i, name in enumerate(m["class_names"]):
        c = m["per_class"][name]
        tp, fn, fp = cm[i, i], cm[i].sum() - cm[i, i], cm[:, i].sum() - cm[i, i]
        assert c["sensitivity"] == pytest.approx(tp / (tp + fn) if tp + fn else 0.0)
        assert c["specificity"] == pytest.approx((cm.sum() - tp - fn - fp) / (cm.sum() - tp - fn))
    # Recompute from the best checkpoint and the manifest's test split: same matrix.
    model, cfg, split = rundir.load_run(demo_run)
    from kvasir_tf.data import pipeline
    x = pipeline.load_images(split.paths("test"), cfg["image_size"]).astype(np.float32)
    pred = np.argmax(model.predict(x, verbose=0), axis=1)
    from kvasir_tf import metrics
    again = metrics.classification_report(split.labels("test"), pred, split.class_names)
    assert again["confusion_matrix"] == m["confusion_matrix"]


def test_new_run_refuses_to_overwrite(demo_run):
    cfg = T.TrainConfig.from_run(demo_run, resume=False)
    assert Path(cfg.out) == demo_run  # stored absolute
    with pytest.raises(KvasirError, match="--resume"):
        T.train(cfg)


# ----------------------------------------------------------------------------- kill -9 + resume
_KILLED_TRAIN = r"""
import os, signal, sys
from kvasir_tf import callbacks, rundir, train
where, n = os.environ["KILL_AT"].split(":")
n, save, write, saves = int(n), callbacks.save_model, rundir.write_json_atomic, []

def dying_save(model, path):
    saves.append(path)
    save(model, path)
    if where == "save" and len(saves) == n:   # the n-th model file is on disk under its temporary name
        os.kill(os.getpid(), signal.SIGKILL)

def dying_write(path, data):
    write(path, data)
    if where == "state" and os.path.basename(path) == rundir.STATE and data["epochs_completed"] == n:
        os.kill(os.getpid(), signal.SIGKILL)   # the instant epoch n's checkpoint is complete

callbacks.save_model, callbacks.rundir.write_json_atomic = dying_save, dying_write
sys.exit(train.main(sys.argv[1:]))
"""


def test_sigkill_anywhere_then_resume_equals_uninterrupted(demo_run, tmp_path):
    """Killed while writing epoch 2's model file, resumed, killed again the instant epoch 3's
    checkpoint is complete, resumed again: identical weights, optimizer slots, eps and history
    (every epoch's row once: a row is on disk before its checkpoint, and a resume drops the rows
    after the checkpoint it starts from).

    Tolerance 0: with op determinism, a fixed (seed, epoch) data order, re-seeded dropout
    and the same decoded-image cache, the resumed epochs run the same ops on the same bits.
    """
    data = demo_run.parent / "demo_data"
    run = tmp_path / "k"

    def train(kill_at, *args):
        command = [sys.executable, "-c", _KILLED_TRAIN] if kill_at else [sys.executable, "-m", "kvasir_tf.train"]
        return subprocess.run([*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                              env=dict(os.environ, KILL_AT=kill_at or ""))
    first = train("save:2", "--data-dir", str(data), "--epochs", str(EPOCHS), *TINY, "--out", str(run))
    assert first.returncode == -signal.SIGKILL, first.stdout[-2000:] + first.stderr[-2000:]
    assert (run / "checkpoints" / ".tmp-last.keras").exists()          # killed mid-write
    assert rundir.read_state(run)["epochs_completed"] == 1
    second = train("state:3", "--resume", str(run))
    assert second.returncode == -signal.SIGKILL, second.stdout[-2000:] + second.stderr[-2000:]
    assert "after epoch 1" in second.stdout and rundir.read_state(run)["epochs_completed"] == 3
    res = train(None, "--resume", str(run))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "resuming" in res.stdout and "after epoch 3" in res.stdout
    a = _ckpt_vars(demo_run / "checkpoints" / "resume" / f"ckpt-{EPOCHS}")
    b = _ckpt_vars(run / "checkpoints" / "resume" / f"ckpt-{EPOCHS}")
    assert a.keys() == b.keys() and len(a) > 100
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert [r["epoch"] for r in _history(run)] == [str(e) for e in range(EPOCHS)]
    assert [r["ce"] for r in _history(run)] == [r["ce"] for r in _history(demo_run)]


def test_resume_with_a_changed_setting_is_a_one_line_error(demo_run, capsys):
    assert T.main(["--resume", str(demo_run), "--image-size", "48", "--seed", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --resume") and "--image-size, --seed" in err and "\n" not in err


# ----------------------------------------------------------------------------- Ctrl-C, NaN, init-from
class _Poison(tf.keras.callbacks.Callback):
    """Makes the model's first kernel NaN at the start of one epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch_now == self.epoch and batch == 1:
            w = self.model.trainable_variables[0]
            w.assign(tf.fill(w.shape, float("nan")))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_now = epoch


class _CtrlC(tf.keras.callbacks.Callback):
    """Sends this process SIGINT in the middle of one epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_now = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch_now == self.epoch and batch == 0:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def float_run(tmp_path_factory):
    """A float run interrupted by Ctrl-C in epoch 2, resumed, then stopped by NaN in epoch 3.

    Under --distribute mirrored (one CPU replica here), so checkpoints, guards and re-seeding
    are exercised with mirrored variables too.
    """
    work = tmp_path_factory.mktemp("float")
    run, data = work / "run", _tiny_data(work / "data")
    cfg = cfg_from(["--mode", "float", "--data-dir", str(data), "--epochs", "4", *TINY,
                              "--distribute", "mirrored", "--out", str(run)])
    with pytest.raises(T.TrainingInterrupted, match="--resume") as interrupted:
        T.train(cfg, callbacks=[_CtrlC(epoch=1)])
    stopped = None
    try:
        T.train(T.TrainConfig.from_run(run, resume=True), callbacks=[_Poison(epoch=2)])
    except T.TrainingStopped as exc:
        stopped = exc
    return run, str(interrupted.value), stopped


def test_ctrl_c_saves_and_exits_cleanly(float_run):
    run, message, _ = float_run
    assert "epoch 1 is the last completed" in message
    assert (run / "checkpoints" / "interrupted.keras").is_file()
    assert tf.train.load_checkpoint(str(run / "checkpoints/resume/ckpt-1")) is not None


def test_ctrl_c_mid_epoch_then_resume_equals_uninterrupted(float_run, tmp_path):
    """The run interrupted in epoch 2 and resumed holds, after epoch 2, what an uninterrupted run holds."""
    run, _, _ = float_run
    data = json.loads((run / "config.json").read_text())["data_dir"]
    ref = tmp_path / "ref"
    T.train(cfg_from(["--mode", "float", "--data-dir", data, "--epochs", "2", *TINY,
                      "--distribute", "mirrored", "--out", str(ref)]))
    a = _ckpt_vars(ref / "checkpoints" / "resume" / "ckpt-2")
    b = _ckpt_vars(run / "checkpoints" / "resume" / "ckpt-2")
    assert a.keys() == b.keys() and len(a) > 100
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_nan_stops_and_keeps_the_last_good_checkpoint(float_run):
    run, _, stopped = float_run
    assert stopped is not None, "a NaN loss must stop the run"
    msg = str(stopped)
    assert "nan" in msg.lower() and "epoch 3" in msg and "last good checkpoint (epoch 2)" in msg
    state = json.loads((run / "checkpoints/state.json").read_text())
    assert state["epochs_completed"] == 2
    assert tf.train.latest_checkpoint(str(run / "checkpoints/resume")).endswith("ckpt-2")
    last = load_model(run / "checkpoints/last.keras")
    assert all(np.isfinite(w).all() for w in last.get_weights())
    ckpt = _ckpt_vars(run / "checkpoints/resume/ckpt-2")
    kernel = last.get_layer("Conv1").kernel.numpy()
    assert any(v.shape == kernel.shape and np.array_equal(v, kernel) for v in ckpt.values())
    assert not (run / "test_metrics.json").exists()


def test_init_from_loads_float_weights_into_the_qat_model(float_run):
    run = float_run[0]
    source = load_model(run / "checkpoints/best.keras")
    cfg = T.TrainConfig(mode="sgt-pact-qat", image_size=32, alpha=0.35, init_from=str(run), seed=9,
                        alpha_init_percentile=0)  # statistics-based alphas: tests/test_pact_alpha.py
    qat = T.build_model(cfg, len(json.loads((run / "config.json").read_text())["class_names"]))
    assert Q.is_qat_model(qat)
    # QAT wrappers keep the wrapped layer's variable names (Conv1/kernel:0 in quant_Conv1).
    qvars = {v.name: v for v in qat.weights}
    compared = 0
    for w in source.weights:
        np.testing.assert_array_equal(qvars[w.name].numpy(), w.numpy(), err_msg=w.name)
        compared += 1
    assert compared > 100
    assert all(float(a.numpy()) == cfg.pact_alpha_init for a in Q.pact_alphas(qat))


def test_init_from_rejects_a_qat_run(demo_run):
    cfg = T.TrainConfig(mode="pact-qat", image_size=32, alpha=0.35, init_from=str(demo_run))
    with pytest.raises(KvasirError, match="float or sgt"):
        T.build_model(cfg, 8)
