"""``python -m kvasir_tf.train``: train MobileNetV2 in one of five modes into a run directory.

Modes (``--mode``): ``float`` (ReLU6, plain step), ``sgt`` (ReLU6, saliency-guided),
``qat`` (stock TF-MOT QAT, ReLU6 kept), ``pact-qat`` (PACT + PACT QAT scheme, plain step),
``sgt-pact-qat`` (the paper's model, default).

Run directory::

    config.json          all hyper-parameters, class names, data location
    split.json           the train/val/test manifest (kvasir_tf.data.split)
    checkpoints/last.keras   model after the last completed epoch
    checkpoints/best.keras   model with the lowest val_loss so far (--monitor)
    checkpoints/resume/  tf.train.Checkpoint of model + optimizer + epoch (for --resume)
    checkpoints/state.json   completed epochs, best epoch and value
    history.csv, tb/     per-epoch logs (loss terms, masked fraction, eps, mean alpha)
    test_metrics.json, confusion_matrix.png   the best model on the test split

Reproducibility: all randomness of an epoch (shuffle order, augmentation, dropout) is a
pure function of ``(seed, epoch)``: each epoch gets a fresh dataset seeded from both, and
every ``tf.random.Generator`` in the model is re-seeded at the epoch start. The epoch
counter therefore *is* the data RNG state, so a resumed run replays exactly the epochs an
uninterrupted run would have.

Stopping: a non-finite loss or weight, or a mean PACT alpha pinned near its floor, stops the
run before that epoch is checkpointed (the last good epoch stays in ``last.keras`` and the
resume checkpoint). The first Ctrl-C stops after the current batch, writes the weights to
``checkpoints/interrupted.keras`` and leaves the resume checkpoint at the last *completed*
epoch, so ``--resume`` stays exact; a second Ctrl-C aborts at once.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import kvasir_tf  # noqa: F401  (selects Keras 2 before tensorflow is imported)
from kvasir_tf import metrics
from kvasir_tf.errors import KvasirError, cli

import tensorflow as tf  # noqa: E402

from kvasir_tf import model as model_lib  # noqa: E402
from kvasir_tf import quantization  # noqa: E402
from kvasir_tf.pact import ALPHA_MIN  # noqa: E402
from kvasir_tf.data import discovery, pipeline  # noqa: E402
from kvasir_tf.data import split as split_lib  # noqa: E402
from kvasir_tf.saliency_training import SaliencyGuidedModel  # noqa: E402


@dataclass(frozen=True)
class ModeSpec:
    activation: str      # "relu6" | "pact"
    guided: bool         # saliency-guided train_step
    qat: str | None      # apply_qat scheme, or None for a float model


MODES = {
    "float": ModeSpec("relu6", False, None),
    "sgt": ModeSpec("relu6", True, None),
    "qat": ModeSpec("relu6", False, "default"),
    "pact-qat": ModeSpec("pact", False, "pact"),
    "sgt-pact-qat": ModeSpec("pact", True, "pact"),
}
DEFAULT_MODE = "sgt-pact-qat"

# Where a user's Kvasir v2 is looked for without --data-dir (after $KVASIR_DATA).
DATA_ENV = "KVASIR_DATA"
DEFAULT_DATA_DIR = Path("data") / "kvasir-dataset-v2"
DEMO_DATA_DIR = Path("demo_data")
# --demo: small enough for a few minutes on 2 CPU cores (paper defaults apply otherwise).
# bn_momentum: MobileNetV2's 0.999 needs thousands of steps before the inference statistics
# are usable; a demo run has tens.
# 30 epochs at lr 3e-3: ~3.5 min on 2 CPU cores, test accuracy ~0.44 (chance 0.125).
DEMO_DEFAULTS = {"image_size": 64, "alpha": 0.35, "epochs": 30, "batch_size": 32, "lr": 3e-3,
                 "bn_momentum": 0.9}

# Monitored value for best.keras -> is a larger value better?
MONITORS = {"val_loss": False, "val_accuracy": True, "loss": False, "accuracy": True}
# Mean PACT alpha below twice its floor: most layers are pinned at the floor (pact.ALPHA_MIN)
# and pass almost no signal.
ALPHA_COLLAPSE = 2 * ALPHA_MIN
CKPT_DIR, RESUME_DIR = "checkpoints", "resume"
LAST, BEST, INTERRUPTED = "last.keras", "best.keras", "interrupted.keras"
# What --resume may change: everything else would make the continuation a different run.
RESUME_MUTABLE = {"epochs", "lr", "alpha_lr", "distribute", "cache_dir", "verbose",
                  "data_dir", "demo", "resume", "out", "deterministic"}


def _default(fn, name):
    """A keyword default of another module's function, so each constant lives in one place."""
    return inspect.signature(fn).parameters[name].default


_SGM = SaliencyGuidedModel.__init__
_BUILD = model_lib.build_mobilenetv2


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run; saved verbatim as ``config.json``."""

    mode: str = DEFAULT_MODE
    data_dir: str | None = None
    demo: bool = False
    image_size: int = 224
    alpha: float = 1.0                  # MobileNetV2 width multiplier
    last_conv_channels: int | None = None   # last 1x1 conv width (None: Keras' 1280); micro models
    early_expansion: int | None = None      # expansion of blocks 1-2 (None: Keras' 6); micro models
    bits: int = 8                       # PACT activation bits (stock QAT is always 8)
    epochs: int = 50                    # paper
    batch_size: int = 128               # paper (global batch under --distribute mirrored)
    lr: float = 1e-3                    # Adam
    alpha_lr: float | None = None       # Adam lr of the PACT alphas; None = lr
    lambda1: float = _default(_SGM, "lambda1")
    lambda2: float = _default(_SGM, "lambda2")
    mask_fraction: float = _default(_SGM, "mask_fraction")
    mask_value: str = _default(_SGM, "mask_value")
    saliency_reduce: str = _default(_SGM, "saliency_reduce")
    eta: float = _default(_BUILD, "pact_eta")
    pact_alpha_init: float = _default(_BUILD, "pact_alpha_init")
    dropout: float = _default(_BUILD, "dropout")
    bn_momentum: float | None = None    # None: the builder's (Keras MobileNetV2: 0.999)
    weights: str = "none"               # none | imagenet | path to a weights file
    seed: int = 0
    out: str | None = None
    init_from: str | None = None
    resume: bool = False
    distribute: str = "none"            # none | mirrored
    mask_overlays: bool = False
    cache_dir: str | None = None
    monitor: str = "val_loss"
    deterministic: bool = True
    verbose: int = 2
    # Filled in by train():
    class_names: list | None = None

    @classmethod
    def from_run(cls, run_dir, **overrides) -> "TrainConfig":
        """The config a run was started with (for --resume), with ``overrides`` applied."""
        stored = _read_json(Path(run_dir) / "config.json", "a run directory written by kvasir_tf.train")
        known = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{k: v for k, v in stored.items() if k in known})
        return dataclasses.replace(cfg, **overrides)

    def validate(self):
        """Reject impossible values with the flag to fix, before any work."""
        checks = [
            (self.mode in MODES, f"--mode {self.mode!r}: use one of {', '.join(MODES)}"),
            (self.image_size >= 32, f"--image-size {self.image_size}: use at least 32"),
            (self.alpha > 0, f"--alpha {self.alpha}: the width multiplier must be > 0"),
            (2 <= self.bits <= 8, f"--bits {self.bits}: use 2..8"),
            (self.epochs >= 1, f"--epochs {self.epochs}: use at least 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: use at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr {self.lr}: must be a positive number"),
            (self.alpha_lr is None or self.alpha_lr > 0, f"--alpha-lr {self.alpha_lr}: must be > 0"),
            (0 < self.mask_fraction < 1, f"--mask-fraction {self.mask_fraction}: use a value in (0, 1)"),
            (self.lambda1 >= 0 and self.lambda2 >= 0, "--lambda1/--lambda2 must be >= 0"),
            (self.eta >= 0, f"--eta {self.eta}: must be >= 0"),
            (self.bn_momentum is None or 0 <= self.bn_momentum < 1,
             f"--bn-momentum {self.bn_momentum}: use a value in [0, 1)"),
            (self.distribute in ("none", "mirrored"), f"--distribute {self.distribute!r}: use none or mirrored"),
            (self.monitor in MONITORS, f"--monitor {self.monitor!r}: use one of {', '.join(MONITORS)}"),
            (self.weights in ("none", "imagenet") or Path(self.weights).is_file(),
             f"--weights {self.weights}: no such file; use none, imagenet or a weights file"),
        ]
        for ok, msg in checks:
            if not ok:
                raise KvasirError(msg)


class TrainingStopped(KvasirError):
    """The run stopped itself (NaN loss, collapsed alpha); the last good checkpoint is kept."""


class TrainingInterrupted(KvasirError):
    """Ctrl-C: the run saved what it had and can be continued with --resume."""


# ----------------------------------------------------------------------------- helpers
def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KvasirError(f"{path} not found: expected {what}") from None
    except ValueError as exc:
        raise KvasirError(f"{path} is not valid JSON ({exc}); restore it or start a new run") from None


def _write_json_atomic(path: Path, doc) -> Path:
    """Write then rename, so a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def _stream_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent 31-bit seed per (run seed, epoch, randomness stream)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(stream)]).generate_state(1)[0] >> 1)


def _resolve_data_dir(config: TrainConfig) -> Path:
    """--data-dir, --demo, $KVASIR_DATA or ./data/kvasir-dataset-v2; never nothing."""
    if config.data_dir:
        return Path(config.data_dir).expanduser().resolve()
    if config.demo:
        from kvasir_tf.data import synthetic
        print(f"demo data: {DEMO_DATA_DIR.resolve()} (generated on first use)")
        return Path(synthetic.ensure_demo_data(DEMO_DATA_DIR)).resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        if not Path(env).is_dir():
            raise KvasirError(f"${DATA_ENV}={env} is not a directory; point it at your Kvasir v2 folder")
        return Path(env).expanduser().resolve()
    if DEFAULT_DATA_DIR.is_dir():
        return DEFAULT_DATA_DIR.resolve()
    raise KvasirError(
        f"no dataset: pass --data-dir DIR (Kvasir v2 or any class-per-folder dataset), get Kvasir v2 "
        f"with `kvasir-data download data/` (found at ./{DEFAULT_DATA_DIR} or ${DATA_ENV}), "
        "or run on generated demo data with `python -m kvasir_tf.train --demo`")


def _model_rng_generators(root) -> list:
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


# ----------------------------------------------------------------------------- model
def build_model(config: TrainConfig, num_classes: int) -> tf.keras.Model:
    """The flat (possibly QAT-wrapped) model of ``config.mode``; --init-from weights loaded before QAT."""
    spec = MODES[config.mode]
    weights = None if config.weights == "none" else config.weights
    model = model_lib.build_mobilenetv2(
        config.image_size, num_classes, alpha=config.alpha, weights=weights, dropout=config.dropout,
        activation=spec.activation, pact_bits=config.bits, pact_alpha_init=config.pact_alpha_init,
        pact_eta=config.eta, seed=config.seed, last_conv_channels=config.last_conv_channels,
        early_expansion=config.early_expansion)
    if config.bn_momentum is not None:
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = config.bn_momentum  # read at call time and by get_config (QAT clone)
    if config.init_from:
        src_dir = Path(config.init_from)
        src_cfg = _read_json(src_dir / "config.json", "a run directory to initialise from (--init-from)")
        if MODES.get(src_cfg.get("mode"), MODES["qat"]).qat:
            raise KvasirError(f"--init-from {src_dir}: that run is mode {src_cfg.get('mode')!r}; "
                              "initialise from a float or sgt run")
        ckpt = src_dir / CKPT_DIR / BEST
        if not ckpt.is_file():
            raise KvasirError(f"--init-from: {ckpt} is missing; train that run first (or pick another)")
        source = quantization.load_model(str(ckpt))
        n = model_lib.copy_weights(source, model)  # by layer name; PACT alphas keep their init
        expected = sum(1 for layer in source.layers if layer.weights)
        if n != expected:
            raise KvasirError(f"--init-from: only {n} of the {expected} weighted layers of {ckpt} exist "
                              "in this model; the source run must use the same architecture")
        print(f"init-from: copied the weights of {n} layers from {ckpt}")
    if spec.qat:
        model = quantization.apply_qat(model, scheme=spec.qat)
    return model


class AdamWithAlphaLR(tf.keras.optimizers.Adam):
    """Adam whose PACT alpha updates are scaled by alpha_lr / lr (Adam's step is linear in lr)."""

    def __init__(self, learning_rate, alpha_vars=(), alpha_lr_ratio=1.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self._alpha_keys = {self._var_key(v) for v in alpha_vars}
        self._alpha_lr_ratio = float(alpha_lr_ratio)

    def update_step(self, gradient, variable):
        if self._var_key(variable) not in self._alpha_keys or self._alpha_lr_ratio == 1.0:
            return super().update_step(gradient, variable)
        before = tf.identity(variable)
        super().update_step(gradient, variable)
        variable.assign(before + (variable - before) * self._alpha_lr_ratio)


def _compile(config: TrainConfig, num_classes: int):
    """(SaliencyGuidedModel, optimizer), built and compiled in the current strategy scope."""
    spec = MODES[config.mode]
    model = build_model(config, num_classes)
    sgm = SaliencyGuidedModel(model, guided=spec.guided, lambda1=config.lambda1, lambda2=config.lambda2,
                              mask_fraction=config.mask_fraction, mask_value=config.mask_value,
                              saliency_reduce=config.saliency_reduce)
    alphas = quantization.pact_alphas(model)
    ratio = (config.alpha_lr / config.lr) if config.alpha_lr else 1.0
    opt = AdamWithAlphaLR(config.lr, alpha_vars=alphas, alpha_lr_ratio=ratio)
    sgm.compile(optimizer=opt, loss=tf.keras.losses.SparseCategoricalCrossentropy(),
                metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    sgm(tf.zeros([1, config.image_size, config.image_size, 3]))  # build before restore
    opt.build(sgm.trainable_variables)  # slots exist now, so a restore fills them
    return sgm, opt, alphas


# ----------------------------------------------------------------------------- callbacks
class _Interrupt:
    """First Ctrl-C: finish the current batch, save, exit. Second Ctrl-C: abort at once."""

    def __init__(self):
        self.requested = False
        self.model = None
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
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


class _Guard(tf.keras.callbacks.Callback):
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


class _EpochRNG(tf.keras.callbacks.Callback):
    """Re-seeds the model's random generators from (seed, epoch): see the module docstring."""

    def __init__(self, generators, seed):
        super().__init__()
        self.generators, self.seed = generators, seed

    def on_epoch_begin(self, epoch, logs=None):
        for i, gen in enumerate(self.generators):
            gen.reset_from_seed(_stream_seed(self.seed, epoch, 1000 + i))


class _EpochCheckpoint(tf.keras.callbacks.Callback):
    """At each completed, healthy epoch: last.keras, best.keras if improved, resume checkpoint.

    Every file is written under a temporary name and renamed, and the resume checkpoint
    (whose ``checkpoint`` index file is itself replaced atomically) is written last, so a
    kill at any point leaves a consistent previous state to resume from.
    """

    def __init__(self, run_dir, ckpt, manager, guard, interrupt, monitor, inner_model):
        super().__init__()
        self.ckpt_dir = Path(run_dir) / CKPT_DIR
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
        quantization.save_model(self.inner, str(tmp))
        os.replace(tmp, final)
        return final

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.reason:
            return  # weights are bad: keep the previous epoch's files
        steps = self.params.get("steps")
        if self.interrupt.requested or (steps and self.batches < steps):
            path = self._save_model(INTERRUPTED)
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
        last = self._save_model(LAST)
        if improved:
            tmp = self.ckpt_dir / f".tmp-{BEST}"
            shutil.copyfile(last, tmp)
            os.replace(tmp, self.ckpt_dir / BEST)
            self.ckpt.best.assign(value)
            self.ckpt.best_epoch.assign(epoch + 1)
        self.ckpt.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        _write_json_atomic(self.ckpt_dir / "state.json", {
            "epochs_completed": epoch + 1, "monitor": self.monitor, "last_value": value,
            "best_value": float(self.ckpt.best.numpy()), "best_epoch": int(self.ckpt.best_epoch.numpy()),
            "resume_checkpoint": self.manager.latest_checkpoint})


class _OneEpoch(tf.keras.callbacks.Callback):
    """Ends each fit() after one epoch, so fit(epochs=N) shows the true "Epoch k/N"."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def _truncate_history(path: Path, start_epoch: int):
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


# ----------------------------------------------------------------------------- run setup
def _prepare_run(config: TrainConfig):
    """(run_dir, config, split): a new run directory, or the existing one for --resume."""
    if config.resume:
        if not config.out:
            raise KvasirError("--resume needs the run directory: --resume RUN_DIR")
        run_dir = Path(config.out)
        stored = TrainConfig.from_run(run_dir)
        diff = [f.name for f in dataclasses.fields(TrainConfig)
                if f.name not in RESUME_MUTABLE | {"class_names"}
                and getattr(stored, f.name) != getattr(config, f.name)]
        if diff:
            raise KvasirError(f"--resume {run_dir}: cannot change {', '.join('--' + d.replace('_', '-') for d in diff)}"
                              " of a run; drop those flags or start a new run with --out")
        data_dir = config.data_dir if config.data_dir and config.data_dir != stored.data_dir else None
        split = split_lib.load_manifest(run_dir, data_dir=data_dir)
        if not (run_dir / CKPT_DIR / RESUME_DIR / "checkpoint").is_file():
            raise KvasirError(f"--resume {run_dir}: no completed epoch to resume from "
                              f"({run_dir / CKPT_DIR / RESUME_DIR} is empty); start it again without --resume")
        config = dataclasses.replace(config, class_names=list(split.class_names),
                                     data_dir=str(split.root))
        return run_dir, config, split

    run_dir = Path(config.out) if config.out else Path("runs") / f"{config.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "config.json").exists():
        raise KvasirError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                          "or pick another --out")
    if config.init_from:
        # Fine-tune on the source run's split, so its test images stay unseen.
        data_dir = _resolve_data_dir(config) if (config.data_dir or config.demo) else None
        split = split_lib.load_manifest(config.init_from, data_dir=data_dir)
    else:
        index = discovery.discover(_resolve_data_dir(config))
        split = split_lib.stratified_split(index, seed=config.seed)
    config = dataclasses.replace(config, class_names=list(split.class_names), data_dir=str(split.root),
                                 out=str(run_dir.resolve()))
    (run_dir / CKPT_DIR).mkdir(parents=True, exist_ok=True)
    doc = dataclasses.asdict(config)
    doc.update(num_classes=len(split.class_names), tensorflow=tf.__version__,
               counts={s: len(split.subset(s)) for s in split_lib.SUBSETS})
    _write_json_atomic(run_dir / "config.json", doc)
    split_lib.save_manifest(split, run_dir)
    return run_dir, config, split


@contextlib.contextmanager
def _reproducible(config: TrainConfig):
    """Seeds, op determinism and tf.random.Generator-backed dropout, restored afterwards."""
    from tensorflow.python.framework import config as tf_config  # no public disable_op_determinism
    rng = tf.keras.backend.experimental
    had_det = tf_config.is_op_determinism_enabled()
    had_gen = rng.is_tf_random_generator_enabled()
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(config.seed)
    rng.enable_tf_random_generator()
    if config.deterministic:
        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if not had_gen:
            rng.disable_tf_random_generator()
        if config.deterministic and not had_det:
            tf_config.disable_op_determinism()


def _train_dataset(config, split, epoch, cache_dir):
    return pipeline.make_dataset(split, "train", config.image_size, config.batch_size, training=True,
                                 mask_overlays=config.mask_overlays, cache_dir=cache_dir,
                                 seed=_stream_seed(config.seed, epoch, 0))


def evaluate_run(run_dir, config: TrainConfig, split, *, checkpoint=BEST, cache_dir=None) -> dict:
    """Test-split metrics of a saved checkpoint: test_metrics.json, confusion_matrix.png, a table."""
    run_dir = Path(run_dir)
    path = run_dir / CKPT_DIR / checkpoint
    model = quantization.load_model(str(path))
    ds = pipeline.make_dataset(split, "test", config.image_size, config.batch_size, training=False,
                               mask_overlays=config.mask_overlays, cache_dir=cache_dir)
    ys, ps = [], []
    for x, y in ds:
        ps.append(np.asarray(model.predict_on_batch(x)))
        ys.append(y.numpy())
    report = metrics.classification_report(np.concatenate(ys), np.concatenate(ps), split.class_names)
    state_file = run_dir / CKPT_DIR / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    report.update(checkpoint=checkpoint, best_epoch=state.get("best_epoch"), mode=config.mode,
                  monitor=config.monitor)
    metrics.save_report_json(report, run_dir / "test_metrics.json")
    metrics.save_confusion_matrix_png(report, run_dir / "confusion_matrix.png")
    print(f"test split ({report['n']} images), {checkpoint} checkpoint (epoch {state.get('best_epoch')}):")
    print(metrics.format_report(report))
    return report


# ----------------------------------------------------------------------------- train
def train(config: TrainConfig, *, callbacks=()) -> Path:
    """Train ``config.mode`` into a run directory and evaluate the best checkpoint; returns the run dir.

    Raises TrainingStopped (NaN/inf loss or collapsed alpha; the last good checkpoint is kept)
    and TrainingInterrupted (Ctrl-C; resumable). ``callbacks`` are extra Keras callbacks.
    """
    config.validate()
    run_dir, config, split = _prepare_run(config)
    num_classes = len(split.class_names)
    strategy = (tf.distribute.MirroredStrategy() if config.distribute == "mirrored"
                else tf.distribute.get_strategy())
    with contextlib.ExitStack() as stack:
        stack.enter_context(_reproducible(config))
        cache_dir = config.cache_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="kvasir-train-"))
        with strategy.scope():
            sgm, opt, alphas = _compile(config, num_classes)
            generators = _model_rng_generators(sgm)
            best_init = -np.inf if MONITORS[config.monitor] else np.inf
            ckpt = tf.train.Checkpoint(model=sgm, optimizer=opt,
                                       epoch=tf.Variable(0, dtype=tf.int64, trainable=False),
                                       best=tf.Variable(best_init, dtype=tf.float64, trainable=False),
                                       best_epoch=tf.Variable(0, dtype=tf.int64, trainable=False))
        manager = tf.train.CheckpointManager(ckpt, str(run_dir / CKPT_DIR / RESUME_DIR), max_to_keep=2)
        start = 0
        if config.resume:
            ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            opt.learning_rate.assign(config.lr)  # --lr may be changed on resume
            start = int(ckpt.epoch.numpy())
            _truncate_history(run_dir / "history.csv", start)
            print(f"resuming {run_dir} after epoch {start} of {config.epochs}")
        if start < config.epochs:
            print(f"training {config.mode} on {split.root}: {num_classes} classes, "
                  f"{len(split.train)}/{len(split.val)}/{len(split.test)} train/val/test images, "
                  f"{config.image_size}px, alpha {config.alpha}, {config.epochs} epochs -> {run_dir}")
            _fit(config, run_dir, split, sgm, opt, alphas, generators, ckpt, manager, start,
                 cache_dir, list(callbacks))
        evaluate_run(run_dir, config, split, cache_dir=cache_dir)
    return run_dir


def _fit(config, run_dir, split, sgm, opt, alphas, generators, ckpt, manager, start, cache_dir, extra):
    guard = _Guard(alphas)
    interrupt = _Interrupt()
    interrupt.model = sgm
    cbs = [guard, _EpochRNG(generators, config.seed),
           _EpochCheckpoint(run_dir, ckpt, manager, guard, interrupt, config.monitor, sgm.model),
           tf.keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
           tf.keras.callbacks.TensorBoard(str(run_dir / "tb"), write_graph=False, profile_batch=0),
           *extra, _OneEpoch()]
    # Decode once into the .npy cache, so every epoch (and a resumed process) reads the same
    # memory-mapped array in the same order.
    for subset in ("train", "val", "test"):
        pipeline.build_cache(split.paths(subset), config.image_size, mask_overlays=config.mask_overlays,
                             cache_dir=cache_dir, progress=config.verbose == 1)
    val = pipeline.make_dataset(split, "val", config.image_size, config.batch_size, training=False,
                                mask_overlays=config.mask_overlays, cache_dir=cache_dir)
    with interrupt:
        for epoch in range(start, config.epochs):
            # A fresh dataset per epoch, seeded from (seed, epoch): see the module docstring.
            sgm.fit(_train_dataset(config, split, epoch, cache_dir), validation_data=val,
                    initial_epoch=epoch, epochs=config.epochs, callbacks=cbs, verbose=config.verbose)
            if guard.reason or interrupt.requested:
                break
    done = int(ckpt.epoch.numpy())
    last = run_dir / CKPT_DIR / LAST
    if guard.reason:
        kept = (f"the last good checkpoint (epoch {done}) is kept in {last}" if done
                else "no epoch completed, so there is no checkpoint")
        raise TrainingStopped(f"training stopped: {guard.reason}; {kept}; lower --lr (or raise --eta "
                              f"against alpha collapse) and continue with --resume {run_dir} --lr X")
    if interrupt.requested:
        raise TrainingInterrupted(f"interrupted: epoch {done} is the last completed one ({last}); "
                                  f"continue with --resume {run_dir}")


def load_run(run_dir, *, checkpoint: str = "best", data_dir=None):
    """(model, config dict, split) of a run directory, for evaluation/conversion tools.

    ``checkpoint``: "best" or "last"; ``data_dir`` relocates the dataset of the split.
    """
    run_dir = Path(run_dir)
    config = _read_json(run_dir / "config.json", "a run directory written by `python -m kvasir_tf.train`")
    path = run_dir / CKPT_DIR / f"{checkpoint}.keras"
    if not path.is_file():
        raise KvasirError(f"{path} not found: the run has no {checkpoint} checkpoint yet; train or "
                          "resume it, or pass checkpoint='last'")
    split = split_lib.load_manifest(run_dir, data_dir=data_dir)
    return quantization.load_model(str(path)), config, split


# ----------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m kvasir_tf.train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # default=None everywhere: only flags given explicitly override the --demo / stored config.
    add = p.add_argument
    add("--mode", choices=list(MODES), default=None, help=f"training mode (default {DEFAULT_MODE})")
    add("--data-dir", help=f"Kvasir v2 or any class-per-folder dataset (default ${DATA_ENV}, ./{DEFAULT_DATA_DIR})")
    add("--demo", action="store_true", default=None,
        help=f"train on generated demo data in ./{DEMO_DATA_DIR} with small defaults {DEMO_DEFAULTS}")
    add("--image-size", type=int, help=f"input side in pixels (default {d.image_size})")
    add("--alpha", type=float, help=f"MobileNetV2 width multiplier (default {d.alpha})")
    add("--last-conv-channels", type=int, help="width of the last 1x1 conv (default: Keras' 1280)")
    add("--early-expansion", type=int, help="expansion of MobileNetV2 blocks 1-2 (default: Keras' 6)")
    add("--bits", type=int, help=f"PACT activation bits (default {d.bits})")
    add("--epochs", type=int, help=f"(default {d.epochs})")
    add("--batch-size", type=int, help=f"global batch size (default {d.batch_size})")
    add("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    add("--alpha-lr", type=float, help="Adam learning rate of the PACT alphas (default: --lr)")
    add("--lambda1", type=float, help=f"weight of the KL(clean || masked) term (default {d.lambda1})")
    add("--lambda2", type=float, help=f"weight of the saliency L1 term; > 0 costs a double backprop "
                                      f"(default {d.lambda2})")
    add("--eta", type=float, help=f"PACT alpha L2 penalty (default {d.eta})")
    add("--mask-fraction", type=float, help=f"fraction of input features masked (default {d.mask_fraction})")
    add("--mask-value", choices=["neutral", "mean", "noise"], help=f"(default {d.mask_value})")
    add("--saliency-reduce", choices=["sum", "max"], help=f"channel reduction of |grad| (default {d.saliency_reduce})")
    add("--dropout", type=float, help=f"(default {d.dropout})")
    add("--pact-alpha-init", type=float, help=f"(default {d.pact_alpha_init})")
    add("--bn-momentum", type=float, help="batch-norm moving-average momentum (default: the "
                                          "model's 0.999; lower it for runs of few steps)")
    add("--weights", help="none, imagenet (needs internet) or a weights file (default none)")
    add("--seed", type=int, help=f"(default {d.seed})")
    add("--out", help="run directory (default runs/<mode>-<timestamp>)")
    add("--init-from", metavar="RUN_DIR", help="start from the best weights of a float/sgt run (QAT fine-tuning)")
    add("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
        help="continue a killed/interrupted run from its last completed epoch")
    add("--distribute", choices=["none", "mirrored"], help="mirrored: all GPUs of this machine")
    add("--mask-overlays", action="store_true", default=None, help="black out Kvasir's burnt-in overlays")
    add("--cache-dir", help="keep decoded images here between runs (default: a temporary folder)")
    add("--monitor", choices=list(MONITORS), help=f"value that selects best.keras (default {d.monitor})")
    add("--verbose", type=int, choices=[0, 1, 2], help="Keras progress output (default 2: a line per epoch)")
    return p


def config_from_args(argv=None) -> TrainConfig:
    """Flags -> TrainConfig: explicit flags over --demo defaults (or the stored config on --resume)."""
    args = vars(_parser().parse_args(argv))
    resume = args.pop("resume")
    given = {k: v for k, v in args.items() if v is not None}
    if given.get("demo") and given.get("data_dir"):
        raise KvasirError("--demo and --data-dir exclude each other: pick one")
    if resume is not None:
        run_dir = given.get("out") if resume is True else resume
        if not run_dir:
            raise KvasirError("--resume needs the run directory: --resume RUN_DIR")
        if resume is not True and given.get("out") not in (None, resume):
            raise KvasirError("--resume RUN_DIR and --out name different directories; pass one")
        given.pop("out", None)
        return TrainConfig.from_run(run_dir, **given, resume=True, out=str(run_dir))
    base = dict(DEMO_DEFAULTS) if given.get("demo") else {}
    base.update(given)
    return TrainConfig(**base)


@cli
def main(argv=None) -> int:
    """Thin CLI over :func:`train`."""
    config = config_from_args(argv)
    try:
        run_dir = train(config)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
