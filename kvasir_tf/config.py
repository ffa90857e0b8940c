"""Every setting of a training run (:class:`TrainConfig`) and the one flag parser for them.

Each field says in its metadata what changing it does (:mod:`kvasir_tf.rundir` roles): the
resume check and the comparison's reuse check read that, so neither keeps its own list.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from kvasir_tf import rundir
from kvasir_tf.errors import KvasirError
from kvasir_tf.rundir import LEARN, ORIGIN, PLACE, SCHEDULE


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
DEMO_DEFAULTS = {"image_size": 64, "alpha": 0.35, "epochs": 30, "batch_size": 32, "lr": 3e-3,
                 "bn_momentum": 0.9}
# Monitored value for best.keras -> is a larger value better?
MONITORS = {"val_loss": False, "val_accuracy": True, "loss": False, "accuracy": True}
DISTRIBUTE = ("none", "mirrored", "multiworker")   # kvasir_tf.distribute


# PACT alphas learn at this multiple of --lr unless --alpha-lr is given: Adam moves a scalar by
# about its rate per step, so at 1x an alpha crosses a unit of range in thousands of steps
# (issue 13; measured in README, "PACT's clipping levels").
ALPHA_LR_RATIO = 10.0


# The saliency-guided step (Algorithm 2) and the model: TrainConfig's defaults and choices, which
# SaliencyGuidedModel, build_mobilenetv2 and alpha_init take as theirs (one place for each).
LAMBDA1 = 1.0                # weight of KL(f(x) || f(masked x))
LAMBDA2 = 0.0                # weight of the saliency L1 term (docs/method.md: why 0)
MASK_FRACTION = 0.5          # the paper's "half of the least important features"
# "image": each image's least salient mask_fraction (the paper's, per input); "batch": that
# fraction of the whole batch's pixels, so confidently classified images are masked most.
MASK_SCOPES = ("image", "batch")
MASK_VALUES = ("neutral", "mean", "noise")
SALIENCY_REDUCES = ("sum", "max")
SALIENCY_EVERY = 1           # the paper: a fresh saliency map every step
DROPOUT = 0.2                # Keras MobileNetV2's classifier dropout
PACT_ALPHA_INIT = 6.0        # ReLU6's clip: a PACT layer starts as the ReLU6 it replaces
PACT_ETA = 1e-4              # PACT alpha L2 penalty
ALPHA_INIT_PERCENTILE = 99.0  # --init-from: alpha starts at this percentile of its layer's inputs


def check_guided_step(*, lambda1, lambda2, mask_fraction, mask_scope, mask_value, saliency_reduce,
                      saliency_every):
    """The one rule for each setting of the saliency-guided step, for TrainConfig (its flags)
    and SaliencyGuidedModel (its keywords): raises KvasirError naming both."""
    every_ok = (not isinstance(saliency_every, bool) and int(saliency_every) == saliency_every
                and saliency_every >= 1)
    checks = [
        (float(lambda1) >= 0 and float(lambda2) >= 0,
         f"lambda1 {lambda1}, lambda2 {lambda2} (--lambda1, --lambda2): must be >= 0"),
        (0.0 <= float(mask_fraction) <= 1.0,
         f"mask_fraction {mask_fraction} (--mask-fraction): use a value in [0, 1]"),
        (mask_scope in MASK_SCOPES, f"mask_scope {mask_scope!r} (--mask-scope): use one of {', '.join(MASK_SCOPES)}"),
        (mask_value in MASK_VALUES, f"mask_value {mask_value!r} (--mask-value): use one of {', '.join(MASK_VALUES)}"),
        (saliency_reduce in SALIENCY_REDUCES,
         f"saliency_reduce {saliency_reduce!r} (--saliency-reduce): use one of {', '.join(SALIENCY_REDUCES)}"),
        (every_ok, f"saliency_every {saliency_every} (--saliency-every): use 1 (every step) or more"),
        (not every_ok or saliency_every == 1 or float(lambda2) == 0,
         f"saliency_every {saliency_every} (--saliency-every) reuses an old saliency map, which the L1 "
         f"term cannot differentiate: use lambda2 0 (--lambda2 0) with it, or saliency_every 1"),
    ]
    for ok, msg in checks:
        if not ok:
            raise KvasirError(msg)


def _f(default, role=LEARN, pact_only=False, guided_only=False):
    """``pact_only``: the field means nothing to a ReLU6 run (rundir's reuse check skips it there);
    ``guided_only``: nor to a run without the saliency-guided step."""
    return field(default=default, metadata={"role": role, "pact_only": pact_only,
                                            "guided_only": guided_only})


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run; saved verbatim as ``config.json``."""

    mode: str = _f(DEFAULT_MODE)
    data_dir: str | None = _f(None, PLACE)
    demo: bool = _f(False, PLACE)
    image_size: int = _f(224)
    alpha: float = _f(1.0)                   # MobileNetV2 width multiplier
    last_conv_channels: int | None = _f(None)   # last 1x1 conv width (None: Keras' 1280); micro models
    early_expansion: int | None = _f(None)      # expansion of blocks 1-2 (None: Keras' 6); micro models
    bits: int = _f(8, pact_only=True)        # PACT activation bits (stock QAT is always 8)
    epochs: int = _f(50, SCHEDULE)           # paper
    batch_size: int = _f(128)                # paper (global batch: split over all replicas)
    lr: float = _f(1e-3, SCHEDULE)           # Adam
    alpha_lr: float | None = _f(None, SCHEDULE, pact_only=True)  # PACT alphas' Adam lr; None = alpha_lr_ratio x lr
    alpha_lr_ratio: float = _f(ALPHA_LR_RATIO, SCHEDULE, pact_only=True)
    lambda1: float = _f(LAMBDA1)
    # plain CE epochs before the saliency-guided step (0: Algorithm 2 from the first step; over
    # 5 seeds a warm-up changed nothing measurable, README "The saliency-guided step")
    warmup_epochs: int = _f(0, guided_only=True)
    lambda2: float = _f(LAMBDA2)
    mask_fraction: float = _f(MASK_FRACTION)
    mask_scope: str = _f(MASK_SCOPES[0], guided_only=True)
    mask_value: str = _f(MASK_VALUES[0])
    saliency_reduce: str = _f(SALIENCY_REDUCES[0])
    # S recomputed every K optimizer steps, the last refresh's batch-mean map reused between (1: the
    # paper, every step); an approximation that saves the input backward (README "Step cost")
    saliency_every: int = _f(SALIENCY_EVERY, guided_only=True)
    eta: float = _f(PACT_ETA, pact_only=True)
    pact_alpha_init: float = _f(PACT_ALPHA_INIT, pact_only=True)
    # --init-from: PACT alphas start at this percentile of their layer's inputs; 0 = pact_alpha_init
    alpha_init_percentile: float = _f(ALPHA_INIT_PERCENTILE, pact_only=True)
    dropout: float = _f(DROPOUT)
    bn_momentum: float | None = _f(None)     # None: the builder's (Keras MobileNetV2: 0.999)
    weights: str = _f("none")                # none | imagenet | path to a weights file
    seed: int = _f(0)
    out: str | None = _f(None, PLACE)
    init_from: str | None = _f(None, ORIGIN)
    resume: bool = _f(False, PLACE)
    distribute: str = _f("none", PLACE)      # none | mirrored | multiworker
    mask_overlays: bool = _f(False)
    cache_dir: str | None = _f(None, PLACE)
    monitor: str = _f("val_loss")
    deterministic: bool = _f(True, SCHEDULE)
    progress: int = _f(2, PLACE)             # Keras fit verbosity: 0 silent, 1 bar, 2 a line an epoch
    class_names: list | None = _f(None, PLACE)  # filled in by train()

    @classmethod
    def from_run(cls, run_dir, **overrides) -> "TrainConfig":
        """The config a run was started with (for --resume), with ``overrides`` applied."""
        stored = rundir.read_config(run_dir)
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
            (self.alpha_lr_ratio > 0, f"--alpha-lr-ratio {self.alpha_lr_ratio}: must be > 0"),
            (0 <= self.alpha_init_percentile <= 100,
             f"--alpha-init-percentile {self.alpha_init_percentile}: use a value in (0, 100], or 0 "
             "to start every alpha at --pact-alpha-init"),
            (0 <= self.warmup_epochs < self.epochs,
             f"--warmup-epochs {self.warmup_epochs}: use 0..{self.epochs - 1} (fewer than --epochs)"),
            (self.eta >= 0, f"--eta {self.eta}: must be >= 0"),
            (self.bn_momentum is None or 0 <= self.bn_momentum < 1,
             f"--bn-momentum {self.bn_momentum}: use a value in [0, 1)"),
            (self.distribute in DISTRIBUTE, f"--distribute {self.distribute!r}: use one of "
                                            f"{', '.join(DISTRIBUTE)}"),
            (self.monitor in MONITORS, f"--monitor {self.monitor!r}: use one of {', '.join(MONITORS)}"),
            (self.weights in ("none", "imagenet") or Path(self.weights).is_file(),
             f"--weights {self.weights}: no such file; use none, imagenet or a weights file"),
        ]
        for ok, msg in checks:
            if not ok:
                raise KvasirError(msg)
        check_guided_step(lambda1=self.lambda1, lambda2=self.lambda2, mask_fraction=self.mask_fraction,
                          mask_scope=self.mask_scope, mask_value=self.mask_value,
                          saliency_reduce=self.saliency_reduce, saliency_every=self.saliency_every)

    @property
    def spec(self) -> ModeSpec:
        return MODES[self.mode]

    @property
    def warmup(self) -> int:
        """Plain CE epochs before the guided step (0 for an unguided mode)."""
        return self.warmup_epochs if self.spec.guided else 0

    @property
    def alpha_learning_rate(self) -> float:
        """The PACT alphas' Adam rate: --alpha-lr, else --alpha-lr-ratio x --lr."""
        return self.alpha_lr if self.alpha_lr else self.alpha_lr_ratio * self.lr


# ----------------------------------------------------------------------------- flags
def add_data_args(p: argparse.ArgumentParser):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--data-dir", help=f"Kvasir v2 or any class-per-folder dataset "
                                      f"(default ${DATA_ENV}, then ./{DEFAULT_DATA_DIR})")
    g.add_argument("--demo", action="store_true", default=None,
                   help=f"generated demo data in ./{DEMO_DATA_DIR}, with small defaults {DEMO_DEFAULTS}")


def add_train_args(p: argparse.ArgumentParser, *, run_flags: bool = True):
    """The training flags; ``run_flags`` adds those naming one run (--mode, --out, --resume, ...).

    Every default is None, so only flags given explicitly override the --demo defaults or a
    stored config; the help states the real default once.
    """
    d = TrainConfig()
    add = p.add_argument
    if run_flags:
        add("--mode", choices=list(MODES), help=f"training mode (default {DEFAULT_MODE})")
    add_data_args(p)
    add("--image-size", type=int, help=f"input side in pixels (default {d.image_size})")
    add("--alpha", type=float, help=f"MobileNetV2 width multiplier (default {d.alpha})")
    add("--last-conv-channels", type=int, help="width of the last 1x1 conv (default: Keras' 1280)")
    add("--early-expansion", type=int, help="expansion of MobileNetV2 blocks 1-2 (default: Keras' 6)")
    add("--bits", type=int, help=f"PACT activation bits (default {d.bits})")
    add("--epochs", type=int, help=f"(default {d.epochs})")
    add("--batch-size", type=int, help=f"global batch size (default {d.batch_size})")
    add("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    add("--alpha-lr", type=float, help="Adam learning rate of the PACT alphas (default --alpha-lr-ratio x --lr)")
    add("--alpha-lr-ratio", type=float, help=f"PACT alpha learning rate over --lr when --alpha-lr is not "
                                             f"given (default {d.alpha_lr_ratio:g})")
    add("--lambda1", type=float, help=f"weight of the KL(clean || masked) term (default {d.lambda1})")
    add("--warmup-epochs", type=int,
        help=f"guided modes: epochs of the plain CE step before the saliency-guided one "
             f"(default {d.warmup_epochs}: guided from the first step, as the paper)")
    add("--lambda2", type=float,
        help=f"weight of the saliency L1 term lambda2 * mean|S|: per image the mean over its pixels "
             f"of S = sum over RGB of |dCE/dpixel| (raw 0..255 pixels), i.e. the paper's ||S||_1 "
             f"divided by H*W; > 0 costs a double backprop, QAT included (default {d.lambda2})")
    add("--eta", type=float, help=f"PACT alpha L2 penalty (default {d.eta})")
    add("--mask-fraction", type=float, help=f"fraction of input features masked (default {d.mask_fraction})")
    add("--mask-scope", choices=list(MASK_SCOPES),
        help=f"mask the fraction of each image, or of the whole batch (default {d.mask_scope})")
    add("--mask-value", choices=list(MASK_VALUES), help=f"(default {d.mask_value})")
    add("--saliency-reduce", choices=list(SALIENCY_REDUCES),
        help=f"channel reduction of |grad| (default {d.saliency_reduce})")
    add("--saliency-every", type=int, metavar="K",
        help=f"guided modes: compute the saliency every K steps and mask the steps between by the "
             f"last one's batch-mean map, an approximation that saves the input backward on K-1 of "
             f"K steps (default {d.saliency_every}: every step, the paper)")
    add("--dropout", type=float, help=f"(default {d.dropout})")
    add("--pact-alpha-init", type=float, help=f"(default {d.pact_alpha_init})")
    add("--alpha-init-percentile", type=float,
        help=f"with --init-from, start each PACT alpha at this percentile of its layer's inputs on "
             f"training images; 0 = --pact-alpha-init (default {d.alpha_init_percentile})")
    add("--bn-momentum", type=float, help="batch-norm moving-average momentum (default: the "
                                          "model's 0.999; lower it for runs of few steps)")
    add("--weights", help="none, imagenet (needs internet) or a weights file (default none)")
    add("--seed", type=int, help=f"(default {d.seed})")
    if run_flags:
        add("--out", help="run directory (default runs/<mode>-<timestamp>)")
        add("--init-from", metavar="RUN_DIR",
            help="start from the best weights of a float/sgt run (QAT fine-tuning)")
        add("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
            help="continue a killed/interrupted run from its last completed epoch")
    add("--distribute", choices=list(DISTRIBUTE),
        help="mirrored: all GPUs of this machine; multiworker: several machines, each started with "
             "the same command and its own $TF_CONFIG (default none)")
    add("--mask-overlays", action="store_true", default=None, help="black out Kvasir's burnt-in overlays")
    add("--cache-dir", help="keep decoded images here between runs (default: a temporary folder)")
    add("--monitor", choices=list(MONITORS), help=f"value that selects best.keras (default {d.monitor})")
    add("--progress", type=int, choices=[0, 1, 2],
        help="Keras progress output: 0 none, 1 a bar, 2 a line per epoch (default 2)")


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user set explicitly."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def base_config(given: dict) -> TrainConfig:
    """Explicit settings over the --demo defaults (when --demo) over the paper's defaults."""
    base = dict(DEMO_DEFAULTS) if given.get("demo") else {}
    base.update(given)
    return TrainConfig(**base)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Parsed train flags -> TrainConfig (the stored config with overrides on --resume)."""
    given = given_settings(args)
    resume = getattr(args, "resume", None)
    if resume is None:
        return base_config(given)
    run_dir = given.get("out") if resume is True else resume
    if not run_dir:
        raise KvasirError("--resume needs the run directory: --resume RUN_DIR")
    if resume is not True and given.get("out") not in (None, resume):
        raise KvasirError("--resume RUN_DIR and --out name different directories; pass one")
    given.pop("out", None)
    given.pop("resume", None)
    return TrainConfig.from_run(run_dir, **given, resume=True, out=str(run_dir))
