"""Scale-out on Dask: run kit's dataset-level work as tasks on a ``dask.distributed`` cluster.

Dataset-level functions (:func:`kit.mapcache.compute_maps`, the deletion/insertion
:func:`kit.metrics.deletion.curve_table`, :func:`kit.studies.roar.run_roar`, ...) take
``client=None``: None runs in this process exactly as before; a ``distributed.Client`` splits the
work into tasks (per method × image chunk, per curve, per retraining) through :func:`map_tasks`.
Results equal the serial run's: every task carries its own seed (derived from the call's seed and
the task, never from the worker that runs it), and the models a task needs are sent to each
worker **once** (scattered with ``broadcast=True``), not pickled with every task.

Tasks read and write the one disk cache (:mod:`kit.cache`) themselves: entries are written
atomically and checksummed, so workers sharing the cache folder (``KIT_CACHE`` on shared storage)
never see a partial file, two workers writing the same key is safe, and a task rerun after its
worker died finds a complete entry or none.

**Laptop** (a LocalCluster: one worker process per core, one thread each)::

    from kit import distributed, mapcache
    with distributed.get_client("local") as client:        # or KIT_SCHEDULER=local
        maps = mapcache.compute_maps(names, clf, x, y, client=client)

**Several machines** (the same kit checkout and ``KIT_CACHE`` on every machine, e.g. an NFS
folder mounted at the same path)::

    dask scheduler                                   # on one machine: tcp://HOST:8786
    KIT_CACHE=/shared/kit-cache dask worker tcp://HOST:8786 --nworkers 8 --nthreads 1
    KIT_SCHEDULER=tcp://HOST:8786 make run           # or get_client("tcp://HOST:8786")

**HPC** (Slurm through dask-jobqueue; PBS/SGE/LSF have the same interface)::

    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=8, processes=8, memory="32GB", walltime="02:00:00",
                           job_script_prologue=["export KIT_CACHE=/scratch/$USER/kit-cache"])
    cluster.scale(jobs=4)
    client = Client(cluster)
    maps = mapcache.compute_maps(names, clf, x, y, client=client)

On a cluster every worker must see the cache at the same path (the client computes the entry
paths), and kit's shipped files (``data/``, e.g. the world inpainter, which a worker loads once on
first use). dask is imported lazily: kit imports and runs serially without it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping

from tqdm.auto import tqdm

__all__ = ["get_client", "map_tasks", "is_client", "SCHEDULER_ENV", "CONNECT_TIMEOUT"]

SCHEDULER_ENV = "KIT_SCHEDULER"
"""Environment variable read by :func:`get_client` when no scheduler is given: unset or empty =
serial, ``local`` = a LocalCluster, ``tcp://host:port`` = a running scheduler."""

CONNECT_TIMEOUT = 10.0
"""Seconds :func:`get_client` waits for a scheduler address to answer."""


def _dask():
    try:
        import distributed
    except ImportError as err:  # kit runs serially without dask; a cluster needs it
        raise ImportError(
            "a Dask scheduler was requested but dask.distributed is not installed; install "
            "'dask[distributed]==2026.8.0' (pyproject.toml pins it) or pass scheduler=None / "
            "client=None to run in-process") from err
    return distributed


def is_client(obj) -> bool:
    """True for a ``distributed.Client`` (without importing dask when it is not loaded)."""
    import sys

    mod = sys.modules.get("distributed")
    return mod is not None and isinstance(obj, mod.Client)


def local_threads(n_workers: int, cores: int | None = None) -> int:
    """Torch intra-op threads per worker of a local cluster: ``cores // n_workers``, at least 1
    (``cores`` default: ``os.cpu_count()``), so the workers together use every core once."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, n_workers))


def get_client(scheduler=None, *, n_workers: int | None = None,
               timeout: float = CONNECT_TIMEOUT):
    """A Dask client for ``scheduler``, or None for in-process (serial) work.

    Args:
        scheduler: None reads :data:`SCHEDULER_ENV` (``KIT_SCHEDULER``); None/empty there too
            means serial (returns None). ``"local"`` starts a LocalCluster of worker processes
            (one Dask thread each, ``n_workers`` = the machine's cores, on 127.0.0.1, no
            dashboard; torch runs :func:`local_threads` intra-op threads in each worker, cores /
            workers, set through ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``), owned by the
            returned client (``client.close()`` stops it; use ``with``).
            ``"tcp://host:port"`` (or ``tls://``, ``ws://``...) connects to a running
            ``dask scheduler``. A ``distributed.Client`` is returned as it is.
        n_workers: worker processes of a ``"local"`` cluster (default: ``os.cpu_count()``).
        timeout: seconds to wait for a scheduler address.

    Returns:
        A ``distributed.Client``, or None.

    Raises:
        ValueError: an address that does not answer within ``timeout`` (the message names it,
            the wait and what to do), or a scheduler that is not a known form.
        ImportError: a scheduler was asked for but dask.distributed is not installed.
    """
    if scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV, "").strip() or None
        if scheduler is None:
            return None
    if is_client(scheduler):
        return scheduler
    if not isinstance(scheduler, str):
        raise ValueError(f"scheduler: expected None, 'local', an address such as "
                         f"'tcp://host:8786' or a distributed.Client, got "
                         f"{type(scheduler).__name__}")
    scheduler = scheduler.strip()
    if not scheduler:
        return None
    distributed = _dask()
    if scheduler == "local":
        cores = os.cpu_count() or 1
        n = n_workers or cores
        # torch's intra-op threads: the cores shared out over the workers (Dask's default, 1,
        # would leave cores idle with fewer workers than cores); read when a worker imports torch
        threads = str(local_threads(n, cores))
        # the client owns the cluster it starts: closing it stops the workers
        return distributed.Client(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
            # the scheduler's HTTP endpoints (health, metrics) start even without a dashboard:
            # a free loopback port, so two local clusters never compete for Dask's 8787
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
    if "://" not in scheduler:
        raise ValueError(f"scheduler: expected None, 'local' or an address such as "
                         f"'tcp://host:8786', got {scheduler!r}")
    try:
        return distributed.Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise ValueError(
            f"scheduler: no Dask scheduler answered at {scheduler!r} within {timeout:g} s "
            f"({type(err).__name__}). Start one there ('dask scheduler', then "
            f"'dask worker {scheduler}' on each machine), check the address and port, or pass "
            f"scheduler=None (and unset {SCHEDULER_ENV}) to run in-process") from err


def map_tasks(fn: Callable, tasks: Iterable, *, client=None, shared: Mapping | None = None,
              progress: bool = False, desc: str = "tasks", retries: int = 2,
              timeout: float | None = None) -> list:
    """``[fn(task, **shared) for task in tasks]``, in-process or on a Dask cluster.

    Args:
        fn: a module-level function (workers import it by name) ``fn(task, **shared)``. It must
            depend only on its arguments: seeds come from the task, so the results equal the
            serial run's whatever worker runs a task, and a task may run twice (a rerun after
            its worker died), so any file it writes must be written atomically.
        tasks: the tasks (small picklable objects: an image chunk, a configuration, a seed).
        client: None = a serial loop in this process; a ``distributed.Client`` = one Dask task
            per element.
        shared: large objects every task needs (the classifier, an inpainter): with a client
            they are scattered once to every worker (``broadcast=True``) and passed by future,
            never pickled with each task.
        progress: a tqdm bar over finished tasks.
        desc: the bar's label (and the Dask key prefix).
        retries: Dask reruns of a task that raised (a worker that died mid-task is handled by
            the scheduler: its tasks rerun elsewhere whatever ``retries`` says).
        timeout: with a client, seconds to wait for all results (``TimeoutError`` after).

    Returns:
        The results, in the order of ``tasks``.

    Raises:
        ValueError: ``client`` is neither None nor a client; bad ``retries``.
    """
    tasks = list(tasks)
    shared = dict(shared or {})
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries: expected an integer >= 0, got {retries!r}")
    if client is None:
        return [fn(t, **shared) for t in tqdm(tasks, desc=desc, disable=not progress,
                                             leave=False)]
    if not is_client(client):
        raise ValueError(f"client: expected None or a distributed.Client (see "
                         f"kit.distributed.get_client), got {type(client).__name__}")
    if not tasks:
        return []
    distributed = _dask()
    # one copy per worker; hash=False: a fresh key, so an edited model is never confused with
    # an earlier scatter of another object; [v]: a dict or list is sent whole, not per element
    futs = {k: client.scatter([v], broadcast=True, hash=False)[0] for k, v in shared.items()}
    run = uuid.uuid4().hex[:8]
    keys = [f"{desc}-{run}-{i}" for i in range(len(tasks))]
    futures = client.map(fn, tasks, key=keys, retries=retries, pure=False, **futs)
    try:
        bar = tqdm(total=len(futures), desc=desc, disable=not progress, leave=False)
        for _ in distributed.as_completed(futures, timeout=timeout):
            bar.update(1)
        bar.close()
        return client.gather(futures)
    finally:
        for f in (*futures, *futs.values()):
            f.release()
