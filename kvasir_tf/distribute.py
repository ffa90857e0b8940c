"""``--distribute``: the tf.distribute strategy of a training run, and where each worker writes.

``none``: TensorFlow's default strategy. ``mirrored``: every GPU of this machine, one replica
each (``tf.distribute.MirroredStrategy``). ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy``
over the machines listed in ``TF_CONFIG``, as in TensorFlow's multi-worker guide:

* the strategy is created before any other TensorFlow op of the process (it configures the
  collective ops of the eager context), so ``train`` makes it first;
* every worker runs the same program, the same steps and the same saves: reading a replicated
  variable (batch-norm moving statistics are synchronised on read) and writing a checkpoint are
  collective operations that all workers must join;
* the chief (the ``chief`` task, else worker 0) writes into the run directory; every other worker
  writes the same files into a temporary directory of its own (:func:`scratch_dir`), deleted
  when it finishes, so no second run directory is ever left behind;
* the training dataset is sharded by data (:func:`shard_by_data`): each worker builds every
  global batch from the same seed and keeps its replicas' part of it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

from kvasir_tf.errors import KvasirError

import tensorflow as tf

TF_CONFIG = "TF_CONFIG"
_MULTIWORKER = None  # the process's MultiWorkerMirroredStrategy (it can be created only once)


def read_tf_config(environ=None) -> dict | None:
    """The parsed ``TF_CONFIG`` (None when unset), or a one-line error saying what to fix."""
    text = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not text:
        return None
    example = ('e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise KvasirError(f"${TF_CONFIG} is not valid JSON ({exc}); set it to {example}") from None
    cluster = doc.get("cluster") if isinstance(doc, dict) else None
    task = doc.get("task") if isinstance(doc, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise KvasirError(f"${TF_CONFIG} needs a \"cluster\" and a \"task\" object; set it to {example}")
    hosts = cluster.get(task.get("type"))
    index = task.get("index")
    if not isinstance(hosts, list) or not isinstance(index, int) or not 0 <= index < len(hosts):
        raise KvasirError(f"${TF_CONFIG}: task {task} is not in the cluster {cluster}; its \"type\" "
                          "must name a job of the cluster and \"index\" one of that job's hosts")
    return doc


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy of ``--distribute name``; for multiworker, call it before any other TF op."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name != "multiworker":
        return tf.distribute.get_strategy()
    global _MULTIWORKER
    if _MULTIWORKER is not None:  # once per process; later runs (kvasir-compare) reuse it
        return _MULTIWORKER
    if read_tf_config() is None:
        print(f"note: ${TF_CONFIG} is not set, so --distribute multiworker trains on this machine "
              "alone (one worker)")
    try:
        _MULTIWORKER = tf.distribute.MultiWorkerMirroredStrategy()
        return _MULTIWORKER
    except RuntimeError as exc:
        if "program startup" not in str(exc):
            raise
        raise KvasirError("--distribute multiworker must start in a fresh process, before any other "
                          "TensorFlow work: run `python -m kvasir_tf.train --distribute multiworker "
                          "...` on each machine") from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True where the run directory is written: the chief, or any single-worker strategy."""
    return bool(strategy.extended.should_checkpoint)


def worker_name(strategy: tf.distribute.Strategy) -> str:
    """e.g. "worker 1" (from TF_CONFIG), or "chief" for a single-machine run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return "chief"
    return f"{task_type} {resolver.task_id}"


@contextlib.contextmanager
def scratch_dir(strategy: tf.distribute.Strategy):
    """None on the chief; on every other worker a temporary directory, deleted at the end.

    The guide's rule: non-chief workers write what the chief writes (the writes are collective),
    but somewhere of their own that they remove afterwards.
    """
    if is_chief(strategy):
        yield None
        return
    path = tempfile.mkdtemp(prefix=f"kvasir-{worker_name(strategy).replace(' ', '')}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Shard by batch elements across workers (no-op on one worker).

    The pipeline reads one decoded array through ``numpy_function``, so there are no files to
    shard by: AUTO would fall back to DATA with a warning. DATA keeps the seeded global batch
    order: each global batch is split over all replicas of all workers.
    """
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """True if ``flag`` is true on any worker (a collective: every worker must call it)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        value = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(1.0 if flag else 0.0))
        return float(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)) > 0
    return bool(flag)
