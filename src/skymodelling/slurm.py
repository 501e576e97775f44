"""The ``slurm`` executor: Dask workers started as SLURM batch jobs by dask-jobqueue.

:class:`SlurmExecutor` is the :class:`~skymodelling.executors.DaskExecutor` on a
``dask_jobqueue.SLURMCluster``. The jobs' partition, account, cores, memory, wall time and
prologue come from dask-jobqueue's own configuration, the ``jobqueue.slurm`` section of the
Dask configuration (e.g. ``~/.config/dask/jobqueue.yaml``)::

    jobqueue:
      slurm:
        queue: regular            # partition
        account: m1234
        cores: 32                 # per job; one single-threaded worker per core
        memory: 64GB              # per job
        walltime: "04:00:00"
        job-script-prologue: ["module load python", "conda activate skymodelling"]

Unset, ``cores`` is 1, ``processes`` equals ``cores`` (single-threaded workers, as the
stages want) and ``memory`` is 2 GB per worker process. Every job's script also exports the
Dask settings that start its workers without ``MALLOC_TRIM_THRESHOLD_`` and without the
statistical profiler (docs/run.md, "Dask configuration for the workers"), whatever the
workers' own configuration files say.

Before anything is submitted, ``sinfo`` must answer (a SLURM cluster is reachable), and the
job script is checked with ``sbatch --test-only`` (partition, account and sizes accepted).

Examples
--------
>>> from skymodelling.slurm import SlurmExecutor
>>> with SlurmExecutor(jobs=4) as ex:                         # doctest: +SKIP
...     run_pipeline("RAW", "OUT", executor=ex)
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import SkyModellingError
from .executors import DaskExecutor

log = logging.getLogger(__name__)

#: Exported by every job script: Dask settings of the job's workers, as environment
#: variables (Dask reads ``DASK_*`` variables as configuration, values as Python literals).
WORKER_ENVIRONMENT = (
    "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=\"{'MALLOC_TRIM_THRESHOLD_': None}\"",
    "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False",
)

#: Default memory per worker process when ``jobqueue.slurm.memory`` is unset, GB.
MEMORY_PER_WORKER_GB = 2


def check_slurm(timeout: float = 30.0) -> str:
    """Raise :class:`SkyModellingError` unless ``sinfo`` answers; return its partitions.

    Examples
    --------
    >>> check_slurm()                                          # doctest: +SKIP
    'debug*'
    """
    if shutil.which("sinfo") is None:
        raise SkyModellingError("the slurm executor needs a SLURM cluster, but `sinfo` is not "
                                "on PATH; run on a login node or use --executor process|dask")
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SkyModellingError(f"no SLURM cluster answered: `sinfo` took more than "
                                f"{timeout:.0f} s; check the controller (SLURM_CONF)") from None
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        raise SkyModellingError(f"no SLURM cluster reachable: `sinfo` failed ({why}); check "
                                "SLURM_CONF or use --executor process|dask")
    return " ".join(res.stdout.split())


def cluster_options() -> dict:
    """The ``SLURMCluster`` arguments skymodelling sets; the rest comes from ``jobqueue.slurm``.

    ``cores`` (default 1), ``processes`` (default: ``cores``), ``memory`` (default 2 GB per
    process) and ``job_script_prologue`` (the configured one followed by
    :data:`WORKER_ENVIRONMENT`).

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"jobqueue.slurm.cores": 4, "jobqueue.slurm.memory": None}):
    ...     opts = cluster_options()
    >>> opts["cores"], opts["processes"], opts["memory"]
    (4, 4, '8GB')
    """
    import dask

    cfg = dask.config.get("jobqueue.slurm", default={}) or {}
    cores = int(cfg.get("cores") or 1)
    processes = int(cfg.get("processes") or cores)
    memory = cfg.get("memory") or f"{MEMORY_PER_WORKER_GB * processes}GB"
    prologue = list(cfg.get("job-script-prologue") or cfg.get("job_script_prologue") or [])
    return {"cores": cores, "processes": processes, "memory": memory,
            "job_script_prologue": prologue + list(WORKER_ENVIRONMENT)}


def _test_only(script: str) -> None:
    """``sbatch --test-only`` the job script: raise a one-line error if SLURM refuses it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dask-worker.sh"
        path.write_text(script)
        res = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True,
                             text=True, timeout=60)
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        raise SkyModellingError(f"SLURM refuses the worker job ({why}); fix jobqueue.slurm "
                                "in the Dask configuration (queue, account, cores, memory, "
                                "walltime)")


class SlurmExecutor(DaskExecutor):
    """The Dask executor on workers that dask-jobqueue starts as SLURM jobs.

    Parameters
    ----------
    jobs : int
        Number of batch jobs to submit; each runs ``processes`` single-threaded workers.
    wait_timeout : float, optional
        Seconds to wait for the first worker to connect (default: as long as it takes,
        e.g. while the jobs queue); a :class:`SkyModellingError` after that.
    **options
        Further ``SLURMCluster`` arguments, overriding the configuration.
    """

    name = "slurm"

    def __init__(self, jobs: int = 1, *, wait_timeout: float | None = None, **options):
        if jobs < 1:
            raise SkyModellingError(f"--jobs must be at least 1, not {jobs}")
        try:
            from dask_jobqueue import SLURMCluster
            from distributed import Client
        except ImportError:
            raise SkyModellingError("the slurm executor needs dask-jobqueue: "
                                    "python -m pip install 'skymodelling[slurm]'") from None
        check_slurm()
        opts = {**cluster_options(), **options}
        cluster = SLURMCluster(**opts)
        try:
            _test_only(cluster.job_script())
            cluster.scale(jobs=jobs)
            client = Client(cluster)
            log.info("submitted %d SLURM job%s of %d worker%s; waiting for the first to start",
                     jobs, "s" if jobs > 1 else "", opts["processes"],
                     "s" if opts["processes"] > 1 else "")
            try:
                client.wait_for_workers(1, timeout=wait_timeout)
            except TimeoutError:
                client.close()
                raise SkyModellingError(f"no SLURM worker job started within {wait_timeout} s; "
                                        "see squeue and the jobs' logs") from None
            super().__init__(client=client)
        except BaseException:
            cluster.close()
            raise
        self._own = True            # the client and the cluster are ours to close
        self._cluster = cluster
        self.jobs = jobs

    def describe(self) -> str:
        return f"slurm ({self.jobs} job{'s' if self.jobs != 1 else ''}) via " + super().describe()


__all__ = ["SlurmExecutor", "check_slurm", "cluster_options", "WORKER_ENVIRONMENT"]
