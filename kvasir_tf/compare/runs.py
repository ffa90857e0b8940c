"""Which runs a comparison trains, and training or reusing them.

One TrainConfig per training mode (``dataclasses.replace`` of the shared settings); in the
finetune recipe the QAT runs start from the float/SGT run, and the equal-budget control runs
(``float-ft``, ``sgt-ft``) continue those as plain float training for the same extra epochs at
the same learning rate. ``scratch`` trains every mode in one stage from random initialisation,
as the paper's Algorithm 2. Every run must end up with the same test split.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from kvasir_tf import rundir
from kvasir_tf.compare import layout
from kvasir_tf.config import TrainConfig
from kvasir_tf.errors import KvasirError

TRAIN_ORDER = ("float", "sgt", "qat", "pact-qat", "sgt-pact-qat")
FINETUNE_FROM = {"qat": "float", "pact-qat": "float", "sgt-pact-qat": "sgt"}
# Equal-budget controls (finetune recipe): run name -> the float/SGT run it continues, as that mode.
CONTROL_FROM = {"float-ft": "float", "sgt-ft": "sgt"}
RUN_ORDER = TRAIN_ORDER + tuple(CONTROL_FROM)
RECIPES = ("finetune", "scratch")


def run_configs(out_dir, modes, base: TrainConfig, *, qat=None, recipe="finetune") -> dict:
    """TrainConfig per run (in training order): ``base`` with the mode, its run folder and, for
    QAT runs fine-tuned from a float/SGT run and their controls, ``qat`` ({field: value}) on top.

    ``modes``: training modes and control run names (``float-ft``, ``sgt-ft``)."""
    _check_recipe(recipe, modes)
    needed = set(modes)
    if recipe == "finetune":
        starts = {**FINETUNE_FROM, **CONTROL_FROM}
        needed |= {starts[m] for m in modes if m in starts}
    configs = {}
    for name in (m for m in RUN_ORDER if m in needed):
        run_dir = layout.run_dir(out_dir, name)
        cfg = dataclasses.replace(base, mode=CONTROL_FROM.get(name, name), out=str(run_dir))
        start = FINETUNE_FROM.get(name) or CONTROL_FROM.get(name)
        if recipe == "finetune" and start:
            cfg = dataclasses.replace(cfg, init_from=configs[start].out, **(qat or {}))
        configs[name] = cfg
    return configs


def _check_recipe(recipe, modes):
    if recipe not in RECIPES:
        raise KvasirError(f"unknown recipe {recipe!r}; use one of {', '.join(RECIPES)}")
    controls = sorted(set(modes) & set(CONTROL_FROM))
    if recipe != "finetune" and controls:
        raise KvasirError(f"the control rows ({', '.join(controls)}) exist only in --recipe finetune; "
                          "in --recipe scratch every row trains the same epochs")


def budget_note(configs: dict, recipe: str) -> str:
    """What each row trained, in epochs, and how the budgets compare (for the report)."""
    def epochs(name):
        c = configs[name]
        return c.epochs + (epochs(Path(c.init_from).name) if c.init_from else 0)
    parts = [f"{name}: {epochs(name)} epochs" + (f" ({configs[Path(c.init_from).name].epochs} + "
                                                  f"{c.epochs} at lr {c.lr:g} from {Path(c.init_from).name})"
                                                  if c.init_from else f" at lr {c.lr:g}")
             for name, c in configs.items()]
    if recipe == "scratch":
        how = ("Recipe scratch (the paper's Algorithm 2): every row trains in one stage from random "
               "initialisation for the same epochs, so budgets are equal.")
    elif set(CONTROL_FROM) & set(configs):
        how = ("Recipe finetune: the QAT rows train more epochs than the float/SGT rows they start "
               "from. The control rows (float-ft, sgt-ft) continue the float/SGT model as plain float "
               "training for the same extra epochs at the same learning rate: compare a QAT row with "
               "its control for equal budgets.")
    else:
        how = ("Recipe finetune without the control rows: the QAT rows train more epochs than the "
               "float/SGT rows, so a QAT gain over them may be extra training.")
    return how + " Runs: " + "; ".join(parts) + "."


# Rough relative cost of one training epoch (a plain float epoch = 1), for the time estimate only:
# the saliency-guided step runs two forward and two backward passes (tools/benchmark_train.py:
# SGT-PACT-QAT 2.28x a QAT step at 96 px); QAT adds fake quants. Seconds per unit are learned
# from the training stages done, since an epoch's time depends on the dataset and image size.
GUIDED_COST, QAT_COST = 2.3, 1.4
# Seconds per artifact, measured by make demo (64 px, 2 cores: 8 conversions 99 s, measuring 13
# artifacts 36 s); conversion time depends little on the dataset.
CONVERT_SECONDS, MEASURE_SECONDS = 12.0, 3.0


class Stages:
    """One progress line per stage, with the time so far and an estimate of what remains.

    A stage is ``(name, cost, seconds_per_unit)``; ``None`` seconds per unit (training, in epoch
    units) are learned from the finished training stages (each one's own wall time over its
    cost), and ``parallel`` such stages run at once: what remains of them takes their summed cost
    over ``parallel``, or the longest one, whichever is more.
    """

    def __init__(self, stages, parallel: int = 1):
        self.names = [s[0] for s in stages]
        self.costs = [float(s[1]) for s in stages]
        self.rates = [s[2] for s in stages]
        self.parallel = max(1, int(parallel))
        self.t0 = time.monotonic()
        self.done = set()
        self._started = {}
        self._learned = [0.0, 0.0]    # wall seconds and cost of the finished learned-rate stages

    def start(self, name):
        i = self.names.index(name)
        now = time.monotonic()
        left = self.seconds_left()
        eta = "estimate after the first stage" if left is None else f"about {_minutes(left)} left"
        print(f"[compare {i + 1}/{len(self.names)}] {name} (elapsed {_minutes(now - self.t0)}, {eta})", flush=True)
        self._started[name] = now

    def seconds_left(self):
        seconds, cost = self._learned
        learned = seconds / cost if cost > 0 else None
        now = time.monotonic()
        total, side_by_side = 0.0, []
        for name, cost, rate in zip(self.names, self.costs, self.rates):
            if name in self.done or cost == 0:
                continue
            if rate is not None:
                total += cost * rate
            elif learned is None:
                return None
            else:
                side_by_side.append(max(0.0, cost * learned - (now - self._started.get(name, now))))
        if side_by_side:
            total += max(sum(side_by_side) / self.parallel, max(side_by_side))
        return total

    def finish(self, name=None) -> float:
        """Mark ``name`` (default: the last started) done; returns its seconds."""
        name = name or next(reversed(self._started))
        i = self.names.index(name)
        seconds = time.monotonic() - self._started.pop(name)
        self.done.add(name)
        if self.rates[i] is None:
            self._learned[0] += seconds
            self._learned[1] += self.costs[i]
        return seconds


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def train_cost(config: TrainConfig) -> float:
    spec = config.spec
    return config.epochs * (GUIDED_COST if spec.guided else 1.0) * (QAT_COST if spec.qat else 1.0)


def train_runs(configs: dict, *, retrain=False, stages=None, jobs=1, out_dir=None) -> dict:
    """Run directory per training mode, training only what is missing or --retrain.

    ``jobs`` > 1 trains up to that many runs at once, each in its own process (a run starts once
    the run it fine-tunes has finished), with its output in the comparison folder ``out_dir``'s
    log of the run (:func:`kvasir_tf.compare.layout.log_path`): on a CPU a
    small model's training keeps about one core busy, so two runs side by side nearly halve the
    time on two cores. Results do not depend on ``jobs`` (each run is seeded and deterministic).
    """
    todo = {}
    for mode, config in configs.items():
        run_dir = Path(config.out)
        if not retrain and rundir.reusable(run_dir, config):
            print(f"[compare] reusing {run_dir}")
        else:
            if run_dir.exists() and retrain:
                shutil.rmtree(run_dir)
            todo[mode] = config
    if int(jobs) > 1 and len(todo) > 1:
        _train_side_by_side(todo, configs, int(jobs), Path(out_dir or "."), stages)
    else:
        from kvasir_tf import train as train_lib
        for mode, config in todo.items():
            _announce(mode, config, stages)
            train_lib.train(config)
            if stages:
                stages.finish()
    runs = {mode: Path(config.out) for mode, config in configs.items()}
    _check_same_split(runs)
    return runs


def _announce(mode, config, stages=None, log=None):
    if stages:
        stages.start(f"train {mode}")
    print(f"[compare] training {mode} -> {config.out}"
          + (f" (from {config.init_from})" if config.init_from else "")
          + (f", output in {log}" if log else ""), flush=True)


def _train_in_worker(config: TrainConfig, log_path: str):
    """One training in a worker process, its output (progress, banners, traceback) in ``log_path``."""
    import os
    import sys
    import traceback
    from kvasir_tf.errors import first_line
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        from kvasir_tf import train as train_lib
        train_lib.train(config)
    except KvasirError:
        raise
    except BaseException as exc:  # the pool would lose the traceback: keep it in the log
        traceback.print_exc()
        raise KvasirError(f"{type(exc).__name__}: {first_line(exc)}") from None
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def ready_runs(pending, todo: dict, configs: dict, finished) -> list:
    """The ``pending`` runs that may start: the run each starts from is finished (or not being
    trained). Costliest first: the longest chain (SGT, then SGT-PACT-QAT) sets the wall time."""
    def parent(mode):
        start = todo[mode].init_from
        return next((n for n, c in configs.items() if start and c.out == start), None)
    ready = [m for m in pending if parent(m) not in todo or parent(m) in finished]
    return sorted(ready, key=lambda m: -train_cost(todo[m]))


def _train_side_by_side(todo: dict, configs: dict, jobs: int, out_dir: Path, stages=None):
    """Train ``todo`` in up to ``jobs`` processes, each run after the run it starts from."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    pending, running, finished = list(todo), {}, set()
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        while pending or running:
            for mode in ready_runs(pending, todo, configs, finished):
                if len(running) >= jobs:
                    break
                pending.remove(mode)
                log = layout.log_path(out_dir, mode)
                log.parent.mkdir(parents=True, exist_ok=True)
                _announce(mode, todo[mode], stages, log)
                running[pool.submit(_train_in_worker, todo[mode], str(log))] = mode
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                mode = running.pop(future)
                try:
                    future.result()
                except KvasirError as exc:
                    if running:
                        print(f"[compare] training {mode} failed; waiting for {', '.join(running.values())} "
                              "to finish (Ctrl-C stops them)", flush=True)
                    raise KvasirError(f"training {mode} failed: {exc} (full output: {layout.log_path(out_dir, mode)})") from None
                seconds = stages.finish(f"train {mode}") if stages else None
                finished.add(mode)
                print(f"[compare] trained {mode}" + (f" in {_minutes(seconds)}" if seconds else ""), flush=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _check_same_split(runs: dict):
    """Every model must be judged on the same test images."""
    from kvasir_tf.data.split import load_manifest
    ref_mode, ref = None, None
    for mode, run_dir in runs.items():
        sp = load_manifest(run_dir)
        key = (list(sp.class_names), [p for p, _ in sp.test])
        if ref is None:
            ref_mode, ref = mode, key
        elif key != ref:
            raise KvasirError(f"runs {ref_mode} and {mode} have different test splits; train them with "
                              "the same data and --seed (or --retrain)")
