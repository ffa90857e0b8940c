"""The Keras callbacks of a training run: stop guards, per-epoch RNG, atomic checkpoints, Ctrl-C.

Reproducibility: all randomness of an epoch (shuffle order, augmentation, dropout, masks) is a
pure function of ``(seed, epoch)``: each epoch gets a fresh dataset seeded from both, and every
``tf.random.Generator`` in the model is re-seeded at the epoch start (:class:`EpochRNG`). The
epoch counter therefore *is* the RNG state, so a resumed run replays exactly the epochs an
uninterrupted run would have.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np

import tensorflow as tf

from kvasir_tf import rundir
from kvasir_tf.config import MONITORS
from kvasir_tf.errors import KvasirError
from kvasir_tf.model_io import save_model
from kvasir_tf.pact import ALPHA_MIN

# Mean PACT alpha below twice its floor: most layers are pinned at the floor (pact.ALPHA_MIN)
# and pass almost no signal.
ALPHA_COLLAPSE = 2 * ALPHA_MIN


def stream_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent 31-bit seed per (run seed, epoch, randomness stream)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(stream)]).generate_state(1)[0] >> 1)


def model_rng_generators(root) -> list:
    """Every tf.random.Generator the model draws from (dropout, noise masks), in a fixed order."""
    gens, seen = [], set()
    mods = [root] + list(root.submodules)
    for mod in mods:
        rg = getattr(mod, "_random_generator", None)
        if rg is not None and hasattr(rg, "_maybe_init"):
            rg._maybe_init()  # keras creates them lazily; they must exist before the first epoch
        for value in list(vars(mod).values()) + [getattr(rg, "_generator", None)]:
            if isinstance(value, tf.random.Generator) and id(value) not in seen:
                seen.add(id(value))
                gens.append(value)
    return gens


class Interrupt:
    """First Ctrl-C: finish the current batch, save, exit. Second Ctrl-C: abort at once.

    ``synced`` (multi-worker): the Ctrl-C is only ``pending`` here until :class:`StopTogether`
    has agreed on it with every worker, since all workers must stop after the same batch.
    """

    def __init__(self, synced=False):
        self.requested = False
        self.pending = False
        self.synced = synced
        self.model = None
        self._old = None

    def _handler(self, signum, frame):
        if self.requested or self.pending:
            raise KeyboardInterrupt
        if self.synced:
            self.pending = True
            print("\ninterrupt: stopping every worker after the next batch and saving "
                  "(Ctrl-C again to abort)", file=sys.stderr, flush=True)
            return
        self.requested = True
        if self.model is not None:
            self.model.stop_training = True
        print("\ninterrupt: stopping after this batch and saving (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


class StopTogether(tf.keras.callbacks.Callback):
    """Multi-worker: a Ctrl-C on any worker stops all of them after the same batch.

    Every step and every save is a collective, so a worker that stopped alone would leave the
    others waiting; the pending flag is all-reduced after each batch (``any_worker``).
    """

    def __init__(self, interrupt, any_worker):
        super().__init__()
        self.interrupt, self.any_worker = interrupt, any_worker

    def on_train_batch_end(self, batch, logs=None):
        if self.any_worker(self.interrupt.pending):
            self.interrupt.requested = True
            self.model.stop_training = True


class Guard(tf.keras.callbacks.Callback):
    """Stops on a non-finite loss or a collapsed PACT alpha, before the epoch is checkpointed."""

    def __init__(self, alphas):
        super().__init__()
        self.alphas = alphas
        self.reason = None
        self.epoch = 0

    def _trip(self, reason):
        if self.reason is None:
            self.reason = reason
        self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(loss):
            self._trip(f"loss became {float(loss)} in epoch {self.epoch + 1}, batch {batch + 1}")
        alpha = logs.get("mean_alpha")
        if self.alphas and alpha is not None and float(alpha) < ALPHA_COLLAPSE:
            self._trip(f"mean PACT alpha collapsed to {float(alpha):.2e} (< {ALPHA_COLLAPSE}) in "
                       f"epoch {self.epoch + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        bad = [k for k, v in (logs or {}).items() if isinstance(v, (float, np.floating)) and not np.isfinite(v)]
        if bad:
            self._trip(f"{', '.join(sorted(bad))} not finite after epoch {epoch + 1}")
        if not all(np.isfinite(w).all() for w in self.model.get_weights()):
            self._trip(f"weights not finite after epoch {epoch + 1}")
        if self.alphas:
            mean_alpha = float(np.mean([float(a.numpy()) for a in self.alphas]))
            if mean_alpha < ALPHA_COLLAPSE:
                self._trip(f"mean PACT alpha collapsed to {mean_alpha:.2e} (< {ALPHA_COLLAPSE}) "
                           f"after epoch {epoch + 1}")


class EpochRNG(tf.keras.callbacks.Callback):
    """Re-seeds the model's random generators from (seed, epoch): see the module docstring."""

    def __init__(self, generators, seed):
        super().__init__()
        self.generators, self.seed = generators, seed

    def on_epoch_begin(self, epoch, logs=None):
        for i, gen in enumerate(self.generators):
            gen.reset_from_seed(stream_seed(self.seed, epoch, 1000 + i))


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """At each completed, healthy epoch: last.keras, best.keras if improved, resume checkpoint.

    Every file is written under a temporary name and renamed, and the resume checkpoint
    (whose ``checkpoint`` index file is itself replaced atomically) is written last, so a
    kill at any point leaves a consistent previous state to resume from. It reads
    ``guard.reason``, so it comes after :class:`Guard` in the list (the order:
    ``kvasir_tf.train._callbacks``).
    """

    def __init__(self, run_dir, ckpt, manager, guard, interrupt, monitor, inner_model):
        super().__init__()
        self.ckpt_dir = Path(run_dir) / rundir.CKPT_DIR
        self.ckpt, self.manager, self.guard, self.interrupt = ckpt, manager, guard, interrupt
        self.monitor, self.higher_better = monitor, MONITORS[monitor]
        self.inner = inner_model
        self.batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def _save_model(self, name):
        final = self.ckpt_dir / name
        tmp = self.ckpt_dir / f".tmp-{name}"
        save_model(self.inner, str(tmp))
        os.replace(tmp, final)
        return final

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.reason:
            return  # weights are bad: keep the previous epoch's files
        steps = self.params.get("steps")
        if self.interrupt.requested or (steps and self.batches < steps):
            path = self._save_model(rundir.INTERRUPTED)
            print(f"saved the weights at the interruption (epoch {epoch + 1}, batch {self.batches}) "
                  f"to {path}", file=sys.stderr)
            return
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            raise KvasirError(f"--monitor {self.monitor}: not in the logged values ({', '.join(logs)})")
        value = float(value)
        best = float(self.ckpt.best.numpy())
        improved = value > best if self.higher_better else value < best
        last = self._save_model(rundir.LAST)
        if improved:
            tmp = self.ckpt_dir / f".tmp-{rundir.BEST}"
            shutil.copyfile(last, tmp)
            os.replace(tmp, self.ckpt_dir / rundir.BEST)
            self.ckpt.best.assign(value)
            self.ckpt.best_epoch.assign(epoch + 1)
        self.ckpt.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        rundir.write_json_atomic(self.ckpt_dir / rundir.STATE, {
            "epochs_completed": epoch + 1, "monitor": self.monitor, "last_value": value,
            "best_value": float(self.ckpt.best.numpy()), "best_epoch": int(self.ckpt.best_epoch.numpy()),
            "resume_checkpoint": self.manager.latest_checkpoint})


class OneEpoch(tf.keras.callbacks.Callback):
    """Ends each fit() after one epoch, so fit(epochs=N) shows the true "Epoch k/N"."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def truncate_history(path: Path, start_epoch: int):
    """Drop CSV rows of epochs that the resumed run will redo (written after the last checkpoint)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split(",", 1)[0].strip().isdigit()
                         and int(ln.split(",", 1)[0]) < start_epoch]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)


class AlphaLog(tf.keras.callbacks.Callback):
    """Every PACT layer's alpha per epoch: ``alphas.csv`` (row 0 = the start), TensorBoard
    scalars ``alpha/<layer>`` under ``tb/alpha`` and the plot ``alphas.png`` (issue 13: a clip
    level that does not move is visible at a glance)."""

    def __init__(self, run_dir, model, start_epoch=0):
        super().__init__()
        from kvasir_tf.alpha_init import alpha_values
        self.run_dir = Path(run_dir)
        self.csv = self.run_dir / rundir.ALPHAS_CSV
        self._values = lambda: alpha_values(model)
        self.start = int(start_epoch)
        self.writer = None

    def _write(self, epoch: int):
        values = self._values()
        names = list(values)
        rows = read_alpha_csv(self.csv) if self.csv.is_file() else {}
        rows = {e: v for e, v in rows.items() if e < epoch}  # a resumed run redoes later epochs
        rows[epoch] = values
        lines = ["epoch," + ",".join(names)]
        lines += [f"{e}," + ",".join(f"{rows[e].get(n, float('nan')):.6g}" for n in names) for e in sorted(rows)]
        tmp = self.csv.with_name(f".{self.csv.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.csv)
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(str(self.run_dir / rundir.TENSORBOARD / rundir.ALPHA_TB))
        with self.writer.as_default():
            for n, v in values.items():
                tf.summary.scalar(f"alpha/{n}", v, step=epoch)
        self.writer.flush()
        plot_alphas(rows, self.run_dir / rundir.ALPHAS_PNG)

    def on_train_begin(self, logs=None):
        if self.start == 0 and not self.csv.is_file():
            self._write(0)

    def on_epoch_end(self, epoch, logs=None):
        self._write(epoch + 1)


def read_alpha_csv(path) -> dict:
    """{epoch: {layer: alpha}} from a run's alphas.csv."""
    lines = Path(path).read_text().splitlines()
    names = lines[0].split(",")[1:]
    out = {}
    for ln in lines[1:]:
        parts = ln.split(",")
        out[int(parts[0])] = {n: float(v) for n, v in zip(names, parts[1:])}
    return out


def plot_alphas(rows: dict, path):
    """Alpha of every layer against the epoch (one line per layer, coloured by depth)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = sorted(rows)
    names = list(rows[epochs[-1]])
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    cmap = plt.get_cmap("viridis")
    for i, n in enumerate(names):
        ax.plot(epochs, [rows[e].get(n, np.nan) for e in epochs], color=cmap(i / max(1, len(names) - 1)),
                lw=1, marker="." if len(epochs) < 20 else None)
    ax.set_xlabel("epoch (0 = start)")
    ax.set_ylabel("PACT alpha")
    ax.set_title(f"{len(names)} PACT layers (dark = early, light = late)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
