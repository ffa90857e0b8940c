"""``python -m kvasir_tf.train``: train MobileNetV2 in one of five modes into a run directory.

Modes (``--mode``): ``float`` (ReLU6, plain step), ``sgt`` (ReLU6, saliency-guided),
``qat`` (stock TF-MOT QAT, ReLU6 kept), ``pact-qat`` (PACT + PACT QAT scheme, plain step),
``sgt-pact-qat`` (the paper's model, default). Settings: :mod:`kvasir_tf.config`; the run
directory's layout: :mod:`kvasir_tf.rundir`; reproducibility and checkpoints:
:mod:`kvasir_tf.callbacks`.

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
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import kvasir_tf
from kvasir_tf import callbacks as cb
from kvasir_tf import distribute, rundir
from kvasir_tf.config import (DATA_ENV, DEFAULT_DATA_DIR, DEMO_DATA_DIR, MODES, MONITORS,
                              TrainConfig, add_train_args, config_from_args)
from kvasir_tf.errors import KvasirError, cli

import tensorflow as tf

from kvasir_tf import model as model_lib
from kvasir_tf import qat
from kvasir_tf.data import discovery, pipeline
from kvasir_tf.data import split as split_lib
from kvasir_tf.model_io import load_model
from kvasir_tf.saliency_training import SaliencyGuidedModel

__all__ = ["TrainConfig", "TrainingInterrupted", "TrainingStopped", "build_model", "train", "main"]


class TrainingStopped(KvasirError):
    """The run stopped itself (NaN loss, collapsed alpha); the last good checkpoint is kept."""


class TrainingInterrupted(KvasirError):
    """Ctrl-C: the run saved what it had and can be continued with --resume."""


def resolve_data_dir(config: TrainConfig) -> Path:
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
        src_cfg = rundir.read_json(rundir.config_path(src_dir), "a run directory to initialise from (--init-from)")
        if MODES.get(src_cfg.get("mode"), MODES["qat"]).qat:
            raise KvasirError(f"--init-from {src_dir}: that run is mode {src_cfg.get('mode')!r}; "
                              "initialise from a float or sgt run")
        ckpt = rundir.checkpoint_path(src_dir)
        if not ckpt.is_file():
            raise KvasirError(f"--init-from: {ckpt} is missing; train that run first (or pick another)")
        source = load_model(ckpt)
        n = model_lib.copy_weights(source, model)  # by layer name; PACT alphas keep their init
        expected = sum(1 for layer in source.layers if layer.weights)
        if n != expected:
            raise KvasirError(f"--init-from: only {n} of the {expected} weighted layers of {ckpt} exist "
                              "in this model; the source run must use the same architecture")
        print(f"init-from: copied the weights of {n} layers from {ckpt}")
        if spec.activation == "pact" and config.alpha_init_percentile and not config.resume:
            _init_alphas(config, model, source)
    if spec.qat:
        model = qat.apply_qat(model, scheme=spec.qat)
    return model


def _init_alphas(config: TrainConfig, model, source):
    """PACT alphas: each layer's input percentile in the float ``source`` on its training images."""
    from kvasir_tf import alpha_init
    split = split_lib.load_manifest(config.init_from, data_dir=config.data_dir)
    images = alpha_init.training_images(split, config.image_size, mask_overlays=config.mask_overlays)
    alphas = alpha_init.init_alphas(model, images, config.alpha_init_percentile, source=source)
    v = np.array(list(alphas.values()))
    print(f"init-from: PACT alphas = the {config.alpha_init_percentile:g}th percentile of each layer's "
          f"inputs on {len(images)} training images: {v.min():.2f}..{v.max():.2f} (median {np.median(v):.2f})")


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
                              mask_fraction=config.mask_fraction, mask_scope=config.mask_scope,
                              mask_value=config.mask_value, saliency_reduce=config.saliency_reduce,
                              saliency_every=config.saliency_every)
    alphas = qat.pact_alphas(model)
    ratio = config.alpha_learning_rate / config.lr
    opt = AdamWithAlphaLR(config.lr, alpha_vars=alphas, alpha_lr_ratio=ratio)
    sgm.compile(optimizer=opt, loss=tf.keras.losses.SparseCategoricalCrossentropy(),
                metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    # The step's logs are metric results, already synchronised over replicas; Keras' default
    # ("auto" = "sum" off TPU) would add them up: val_loss x2 on two workers or GPUs.
    sgm.distribute_reduction_method = "first"
    sgm(tf.zeros([1, config.image_size, config.image_size, 3]))  # build before restore
    opt.build(sgm.trainable_variables)  # slots exist now, so a restore fills them
    return sgm, opt, alphas




# ----------------------------------------------------------------------------- run setup
def _prepare_run(config: TrainConfig, write_to=None):
    """(run_dir, config, split): a new run directory, or the existing one for --resume.

    ``write_to``: a non-chief worker's scratch directory, which gets the new run's files instead.
    """
    if config.resume:
        if not config.out:
            raise KvasirError("--resume needs the run directory: --resume RUN_DIR")
        run_dir = Path(config.out)
        stored = TrainConfig.from_run(run_dir)
        rundir.check_resume(run_dir, stored, config)
        data_dir = config.data_dir if config.data_dir and config.data_dir != stored.data_dir else None
        split = split_lib.load_manifest(run_dir, data_dir=data_dir)
        config = dataclasses.replace(config, class_names=list(split.class_names),
                                     data_dir=str(split.root))
        return run_dir, config, split

    run_dir = Path(config.out) if config.out else Path("runs") / f"{config.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    if write_to is not None:
        run_dir = Path(write_to)
    elif rundir.config_path(run_dir).exists():
        raise KvasirError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                          "or pick another --out")
    if config.init_from:
        # Fine-tune on the source run's split, so its test images stay unseen.
        data_dir = resolve_data_dir(config) if (config.data_dir or config.demo) else None
        split = split_lib.load_manifest(config.init_from, data_dir=data_dir)
    else:
        index = discovery.discover(resolve_data_dir(config))
        split = split_lib.stratified_split(index, seed=config.seed)
    config = dataclasses.replace(config, class_names=list(split.class_names), data_dir=str(split.root),
                                 out=str(run_dir.resolve()))
    (run_dir / rundir.CKPT_DIR).mkdir(parents=True, exist_ok=True)
    doc = dataclasses.asdict(config)
    doc.update(num_classes=len(split.class_names), tensorflow=tf.__version__,
               counts={s: len(split.subset(s)) for s in split_lib.SUBSETS})
    rundir.write_json_atomic(rundir.config_path(run_dir), doc)
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
    return distribute.shard_by_data(pipeline.make_dataset(
        split, "train", config.image_size, config.batch_size, training=True,
        mask_overlays=config.mask_overlays, cache_dir=cache_dir, seed=cb.stream_seed(config.seed, epoch, 0)))


def evaluate_best(run_dir, config: TrainConfig, split) -> dict:
    """The best checkpoint on the test split, through the one scoring path (kvasir_tf.scoring)."""
    from kvasir_tf import metrics
    from kvasir_tf.scoring import keras_predict, score
    path = rundir.checkpoint_path(run_dir)
    report = score(keras_predict(load_model(path)), split, "test", image_size=config.image_size,
                   class_names=split.class_names, batch_size=config.batch_size,
                   mask_overlays=config.mask_overlays, name=str(path))
    state = rundir.read_state(run_dir)
    report.update(checkpoint=rundir.BEST, best_epoch=state.get("best_epoch"), mode=config.mode,
                  monitor=config.monitor)
    metrics.save_report_json(report, Path(run_dir) / rundir.TEST_METRICS)
    metrics.save_confusion_matrix_png(report, Path(run_dir) / rundir.CONFUSION_PNG)
    print(f"test split ({report['n']} images), best checkpoint (epoch {state.get('best_epoch')}):")
    print(metrics.format_report(report))
    return report


# ----------------------------------------------------------------------------- train
def _checkpoint(sgm, opt, config):
    best_init = -np.inf if MONITORS[config.monitor] else np.inf
    return tf.train.Checkpoint(model=sgm, optimizer=opt,
                               epoch=tf.Variable(0, dtype=tf.int64, trainable=False),
                               best=tf.Variable(best_init, dtype=tf.float64, trainable=False),
                               best_epoch=tf.Variable(0, dtype=tf.int64, trainable=False))


def train(config: TrainConfig, *, callbacks=()) -> Path:
    """Train ``config.mode`` into a run directory and evaluate the best checkpoint; returns the run dir.

    Raises TrainingStopped (NaN/inf loss or collapsed alpha; the last good checkpoint is kept)
    and TrainingInterrupted (Ctrl-C; resumable). ``callbacks`` are extra Keras callbacks.
    """
    config.validate()
    given_out = config.out
    strategy = distribute.make_strategy(config.distribute)  # first: multiworker needs that
    with contextlib.ExitStack() as stack:
        # A non-chief worker writes everything into a scratch directory it deletes at the end.
        scratch = stack.enter_context(distribute.scratch_dir(strategy))
        run_dir, config, split = _prepare_run(config, write_to=scratch)
        out_dir = Path(scratch) if scratch else Path(run_dir)
        (out_dir / rundir.CKPT_DIR).mkdir(parents=True, exist_ok=True)  # a resuming worker's scratch
        num_classes = len(split.class_names)
        stack.enter_context(_reproducible(config))
        cache_dir = config.cache_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="kvasir-train-"))
        with strategy.scope():
            sgm, opt, alphas = _compile(config, num_classes)
            generators = cb.model_rng_generators(sgm)
            ckpt = _checkpoint(sgm, opt, config)
        manager = tf.train.CheckpointManager(ckpt, str(rundir.resume_dir(out_dir)), max_to_keep=2)
        start = 0
        if config.resume:  # every worker restores from the run directory, as the chief does
            latest = tf.train.latest_checkpoint(str(rundir.resume_dir(run_dir)))
            ckpt.restore(latest).assert_existing_objects_matched()
            opt.learning_rate.assign(config.lr)  # --lr may be changed on resume
            start = int(ckpt.epoch.numpy())
            cb.truncate_history(out_dir / rundir.HISTORY, start)
            print(f"resuming {run_dir} after epoch {start} of {config.epochs}")
        if start < config.epochs:
            print(f"training {config.mode} on {split.root}: {num_classes} classes, "
                  f"{len(split.train)}/{len(split.val)}/{len(split.test)} train/val/test images, "
                  f"{config.image_size}px, alpha {config.alpha}, {config.epochs} epochs -> {run_dir}")
            state = FitState(out_dir, split, cache_dir, sgm, alphas, generators, ckpt, manager, start)
            try:
                _fit(config, state, list(callbacks))
            except (TrainingStopped, TrainingInterrupted) as exc:
                if scratch is None:
                    raise
                raise type(exc)(f"{distribute.worker_name(strategy)} stopped with the others: "
                                "the chief's message says what to resume") from None
    if scratch is not None:  # evaluation is not collective: the chief's alone
        print(f"{distribute.worker_name(strategy)}: done; its scratch copy {scratch} is deleted "
              "(the chief writes the run directory)")
        return Path(given_out) if given_out else Path(run_dir)
    evaluate_best(run_dir, config, split)
    return run_dir


@dataclasses.dataclass(frozen=True)
class FitState:
    """What one run's fit loop works on, as :func:`train` set it up."""

    run_dir: Path                 # where files go (a non-chief worker's scratch copy)
    split: object                 # kvasir_tf.data.split.Split
    cache_dir: str                # the decoded-image cache
    sgm: SaliencyGuidedModel
    alphas: list                  # PACT alphas (tf.Variable), empty without PACT
    generators: list              # the model's tf.random.Generators, re-seeded each epoch
    ckpt: tf.train.Checkpoint
    manager: tf.train.CheckpointManager
    start: int                    # epochs already completed (resume)


def _callbacks(config, state: FitState, guard, interrupt, extra) -> list:
    """The run's Keras callbacks, in the order they must run (Keras calls them in list order):

    1. ``StopTogether`` (multi-worker only): agrees on a Ctrl-C before anything acts on it;
    2. ``Guard``: sets ``guard.reason`` (NaN, collapsed alpha) at the epoch's end ...
    3. ``EpochRNG``: re-seeds the model's generators at the epoch's start;
    4. the loggers (history CSV, TensorBoard, alphas): before the checkpoint, so a resume
       checkpoint of epoch N implies history rows 0..N-1 on disk (a kill between the two only
       leaves a row that the resume drops and redoes);
    5. ``EpochCheckpoint``: reads ``guard.reason``, so a bad epoch is never checkpointed; it
       also reads ``interrupt``; then the caller's ``extra`` callbacks;
    6. ``OneEpoch`` last: it ends each fit() after one epoch (a fresh dataset per epoch).
    """
    strategy = state.sgm.distribute_strategy
    together = ([cb.StopTogether(interrupt, lambda flag: distribute.any_worker(strategy, flag))]
                if interrupt.synced else [])
    run_dir = Path(state.run_dir)
    return [*together, guard, cb.EpochRNG(state.generators, config.seed),
            tf.keras.callbacks.CSVLogger(str(run_dir / rundir.HISTORY), append=True),
            tf.keras.callbacks.TensorBoard(str(run_dir / rundir.TENSORBOARD), write_graph=False,
                                           profile_batch=0),
            *([cb.AlphaLog(run_dir, state.sgm.model, state.start)] if state.alphas else []),
            cb.EpochCheckpoint(run_dir, state.ckpt, state.manager, guard, interrupt, config.monitor,
                               state.sgm.model),
            *extra, cb.OneEpoch()]


def _fit(config, state: FitState, extra):
    run_dir, split, sgm, cache_dir, start = (state.run_dir, state.split, state.sgm, state.cache_dir,
                                             state.start)
    guard = cb.Guard(state.alphas)
    multiworker = isinstance(sgm.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)
    interrupt = cb.Interrupt(synced=multiworker)
    interrupt.model = sgm
    cbs = _callbacks(config, state, guard, interrupt, extra)
    # Decode once into the .npy cache, so every epoch (and a resumed process) reads the same
    # memory-mapped array in the same order.
    for subset in ("train", "val"):
        pipeline.build_cache(split.paths(subset), config.image_size, mask_overlays=config.mask_overlays,
                             cache_dir=cache_dir, progress=config.progress == 1)
    val = distribute.shard_by_data(pipeline.make_dataset(
        split, "val", config.image_size, config.batch_size, training=False,
        mask_overlays=config.mask_overlays, cache_dir=cache_dir))
    warmup = config.warmup
    if warmup and start < warmup:
        print(f"warm-up: epochs 1-{warmup} take the plain CE step, the saliency-guided step starts "
              f"at epoch {warmup + 1} (--warmup-epochs)")
    with interrupt:
        for epoch in range(start, config.epochs):
            sgm.warmup = epoch < warmup
            # A fresh dataset per epoch, seeded from (seed, epoch): see kvasir_tf.callbacks.
            sgm.fit(_train_dataset(config, split, epoch, cache_dir), validation_data=val,
                    initial_epoch=epoch, epochs=config.epochs, callbacks=cbs, verbose=config.progress)
            if guard.reason or interrupt.requested:
                break
    done = int(state.ckpt.epoch.numpy())
    last = rundir.checkpoint_path(run_dir, rundir.LAST)
    if guard.reason:
        kept = (f"the last good checkpoint (epoch {done}) is kept in {last}" if done
                else "no epoch completed, so there is no checkpoint")
        raise TrainingStopped(f"training stopped: {guard.reason}; {kept}; lower --lr (or raise --eta "
                              f"against alpha collapse) and continue with --resume {run_dir} --lr X")
    if interrupt.requested:
        raise TrainingInterrupted(f"interrupted: epoch {done} is the last completed one ({last}); "
                                  f"continue with --resume {run_dir}")


# ----------------------------------------------------------------------------- CLI
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kvasir_tf.train", description=__doc__.splitlines()[0])
    add_train_args(p)
    kvasir_tf.add_verbose_flag(p)
    return p


@cli
def main(argv=None) -> int:
    """Thin CLI over :func:`train`."""
    config = config_from_args(parser().parse_args(argv))
    try:
        run_dir = train(config)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
