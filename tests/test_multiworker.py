"""--distribute multiworker: two worker processes on 127.0.0.1 (CPU) train like one.

Both workers run ``python -m kvasir_tf.train --distribute multiworker`` (through a launcher that
keeps a copy of worker 1's scratch directory just before it is deleted, so its saves can be
compared), on 6 synthetic images per class at 32 px. They must end with identical weights (the
chief's files against the ones worker 1 wrote into its scratch directory), the chief's run
directory must hold the files a single-worker run writes, and worker 1 must leave nothing behind.
"""
import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import kvasir_tf  # noqa: F401
from kvasir_tf import distribute, qat
from kvasir_tf import train as T
from kvasir_tf.errors import KvasirError
from kvasir_tf.model_io import load_model

import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--mode", "sgt-pact-qat", "--image-size", "32", "--alpha", "0.35", "--epochs", "2",
        "--batch-size", "8", "--seed", "3", "--bn-momentum", "0.9", "--lr", "1e-3", "--progress", "0"]
# Hang guards only: the three processes need ~5.5 CPU minutes (~3 minutes on 2 idle cores), but
# each also waits on the other workers, which a busy machine stretches (22 minutes at load 20).
TIMEOUT_S = 2400
pytestmark = pytest.mark.timeout(TIMEOUT_S + 120)

# Runs `python -m kvasir_tf.train ARGV...`, copying the scratch directory of a non-chief worker
# to KEEP just before train() deletes it.
LAUNCHER = """
import contextlib, shutil, sys
import kvasir_tf
from kvasir_tf import distribute, train
keep, argv = sys.argv[1], sys.argv[2:]
scratch_dir = distribute.scratch_dir

@contextlib.contextmanager
def keeping(strategy):
    with scratch_dir(strategy) as path:
        try:
            yield path
        finally:
            if path is not None:
                shutil.copytree(path, keep)

distribute.scratch_dir = keeping
sys.exit(train.main(argv))
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _layout(run: Path) -> list:
    """Relative paths of a run directory; TensorBoard event names (host, pid, time) normalised."""
    out = []
    for p in sorted(run.rglob("*")):
        if p.is_file():
            rel = p.relative_to(run).as_posix()
            out.append(rel.rsplit("/", 1)[0] + "/<events>" if ".tfevents." in p.name else rel)
    return sorted(set(out))


def _history(run: Path) -> list:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def _ckpt_vars(prefix) -> dict:
    """Every numeric tensor of a tf.train.Checkpoint (model, optimizer slots, eps, epoch, step)."""
    reader = tf.train.load_checkpoint(str(prefix))
    values = {k: np.asarray(reader.get_tensor(k)) for k in reader.get_variable_to_shape_map()}
    return {k: v for k, v in values.items() if v.dtype.kind in "fiu"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(chief run dir, worker 1's kept scratch copy, worker homes, single-worker run, outputs)."""
    from kvasir_tf.data import synthetic
    work = tmp_path_factory.mktemp("multiworker")
    data = synthetic.generate(work / "data", per_class=6, size=48, seed=0)
    launcher = work / "launch.py"
    launcher.write_text(LAUNCHER)
    run, kept = work / "run", work / "worker1-scratch"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, homes = [], []
    for index in range(2):
        home = work / f"home{index}"  # the worker's cwd and TMPDIR: must stay empty for worker 1
        (home / "tmp").mkdir(parents=True)
        homes.append(home)
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TMPDIR=str(home / "tmp"),
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, str(launcher), str(kept), *ARGS, "--data-dir", str(data),
             "--distribute", "multiworker", "--out", str(run)],
            cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    # The single-worker reference run, at the same time (the workers wait on each other a lot).
    single = work / "single"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "kvasir_tf.train", *ARGS, "--data-dir", str(data), "--out", str(single)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs, deadline = [], time.monotonic() + TIMEOUT_S
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"the two workers did not finish within {TIMEOUT_S} s (a collective hang?)")
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    return run, kept, homes, single, outputs


def test_both_workers_end_with_the_same_weights(runs):
    run, kept, _, _, _ = runs
    assert (kept / "checkpoints" / "last.keras").is_file(), "worker 1 saved nothing in its scratch dir"
    for name in ("last.keras", "best.keras"):
        chief = load_model(run / "checkpoints" / name).get_weights()
        worker = load_model(kept / "checkpoints" / name).get_weights()
        assert len(chief) == len(worker) > 100
        for a, b in zip(chief, worker):
            np.testing.assert_array_equal(a, b, err_msg=name)
    # The resume checkpoints too: model, optimizer slots, eps, epoch counter.
    a, b = _ckpt_vars(run / "checkpoints/resume/ckpt-2"), _ckpt_vars(kept / "checkpoints/resume/ckpt-2")
    assert a.keys() == b.keys() and len(a) > 100
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_the_workers_trained_together(runs):
    """Two epochs of 32 images at global batch 8: 4 synchronised steps per epoch on each worker."""
    run, kept, _, _, _ = runs
    ckpt = _ckpt_vars(run / "checkpoints/resume/ckpt-2")
    assert int(ckpt["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == 8
    for d in (run, kept):
        rows = (d / "history.csv").read_text().splitlines()
        assert len(rows) == 3 and rows[1].startswith("0,") and rows[2].startswith("1,")
    assert (run / "history.csv").read_text() == (kept / "history.csv").read_text()
    # Logged values are global, not summed over the workers (val_loss would double otherwise):
    # the validation pass logs the mean alpha of the weights it ran with, i.e. last.keras's.
    last = _history(run)[-1]
    alphas = qat.pact_alphas(load_model(run / "checkpoints" / "last.keras"))
    assert len(alphas) > 10
    assert float(last["val_mean_alpha"]) == pytest.approx(np.mean([float(a.numpy()) for a in alphas]),
                                                          rel=1e-5)


def test_chief_run_directory_matches_a_single_worker_run(runs):
    run, kept, _, single, _ = runs
    assert _layout(run) == _layout(single)
    assert "checkpoints/last.keras" in _layout(run) and "test_metrics.json" in _layout(run)
    split, single_split = (json.loads((d / "split.json").read_text()) for d in (run, single))
    assert [split[s] for s in ("train", "val", "test")] == [single_split[s] for s in ("train", "val", "test")]
    chief_cfg = json.loads((run / "config.json").read_text())
    single_cfg = json.loads((single / "config.json").read_text())
    assert chief_cfg["distribute"] == "multiworker" and chief_cfg["out"] == str(run.resolve())
    assert {k: v for k, v in chief_cfg.items() if k not in ("distribute", "out")} == \
        {k: v for k, v in single_cfg.items() if k not in ("distribute", "out")}
    # Worker 1 wrote the same files, but never evaluated (that is the chief's job); Keras'
    # TensorBoard callback already deletes a non-chief worker's event files itself.
    assert [p for p in _layout(kept) if not p.startswith("tb/")] == \
        [p for p in _layout(run) if not p.startswith("tb/") and p not in ("test_metrics.json",
                                                                         "confusion_matrix.png")]


def test_worker_leaves_no_run_directory_behind(runs):
    run, kept, homes, _, outputs = runs
    assert list((homes[1] / "tmp").iterdir()) == []      # scratch and image cache deleted
    assert [p.name for p in homes[1].iterdir()] == ["tmp"]  # no runs/ of its own
    assert "scratch copy" in outputs[1] and "is deleted" in outputs[1]
    assert "test split" in outputs[0] and "test split" not in outputs[1]


# ----------------------------------------------------------------------------- fast checks
@pytest.mark.parametrize("value, fix", [
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'needs a "cluster" and a "task"'),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "not in the cluster"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not in the cluster"),
])
def test_bad_tf_config_is_a_one_line_error(value, fix):
    with pytest.raises(KvasirError, match=fix):
        distribute.read_tf_config({"TF_CONFIG": value})


def test_tf_config_is_read():
    doc = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    assert distribute.read_tf_config({"TF_CONFIG": json.dumps(doc)}) == doc
    assert distribute.read_tf_config({}) is None


def test_cli_rejects_a_bad_tf_config(monkeypatch, capsys):
    monkeypatch.setenv("TF_CONFIG", "{oops")
    assert T.main(["--distribute", "multiworker", "--demo", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: $TF_CONFIG is not valid JSON") and len(err.strip().splitlines()) == 1


def test_multiworker_after_other_tensorflow_work_says_to_start_fresh(monkeypatch):
    tf.constant(1.0)  # the eager context is initialised in this process
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(KvasirError, match="fresh process"):
        distribute.make_strategy("multiworker")


def test_single_machine_strategies_write_the_run_directory():
    strategy = distribute.make_strategy("none")
    assert distribute.is_chief(strategy)
    with distribute.scratch_dir(strategy) as scratch:
        assert scratch is None
    assert distribute.any_worker(strategy, True) and not distribute.any_worker(strategy, False)


def test_ctrl_c_on_one_worker_stops_every_worker_after_the_same_batch():
    """The handler only marks the Ctrl-C pending; StopTogether acts on the all-workers answer."""
    from kvasir_tf import callbacks as cb
    here, there = cb.Interrupt(synced=True), cb.Interrupt(synced=True)
    here._handler(None, None)
    assert here.pending and not here.requested  # not yet: the other workers have not agreed
    anyone = lambda flag: here.pending or there.pending  # noqa: E731  (the all-reduce, for two)
    for interrupt in (here, there):
        stop = cb.StopTogether(interrupt, anyone)
        stop.set_model(tf.keras.Sequential([tf.keras.layers.Dense(1)]))
        stop.on_train_batch_end(0)
        assert interrupt.requested and stop.model.stop_training
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts at once
        here._handler(None, None)
    idle = cb.StopTogether(cb.Interrupt(synced=True), lambda flag: bool(flag))
    idle.set_model(tf.keras.Sequential([tf.keras.layers.Dense(1)]))
    idle.on_train_batch_end(0)
    assert not idle.interrupt.requested and not idle.model.stop_training
