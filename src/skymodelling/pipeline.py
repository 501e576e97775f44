"""``skymodelling run``: every stage, in order, on one executor.

extract -> enrich -> lines -> mean -> decompose -> merge, each resumable (a
rerun skips the plate-MJDs whose outputs are complete and redoes the rest),
with a progress bar per stage, a log file ``OUT/run.log`` (appended; one
block per run: version, settings, executor, every stage's summary and
problems) and a final summary. Where the tasks run is an
:class:`skymodelling.executors.Executor`: a local process pool by default, or
a Dask cluster.

Examples
--------
>>> from skymodelling.pipeline import run_pipeline
>>> from skymodelling.executors import make_executor
>>> with make_executor("dask", dask_workers=2) as ex:       # doctest: +SKIP
...     summary = run_pipeline("RAW", "OUT", executor=ex)
>>> print(summary.describe())                               # doctest: +SKIP
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .config import Config
from .errors import SkyModellingError
from .executors import Executor, make_executor
from .stages import registry
from .stages._common import read_failures

log = logging.getLogger(__name__)

STAGES = registry.NAMES
LOG_NAME = "run.log"
_LOG_FAILURES = 20  # problems written out one by one in the log, per stage


@dataclass
class RunSummary:
    """What :func:`run_pipeline` did: one :class:`StageSummary` per stage run."""

    out: Path
    executor: str
    stages: list = field(default_factory=list)
    merge_counts: dict | None = None
    merge_seconds: float = 0.0
    seconds: float = 0.0
    peak_rss_mb: dict = field(default_factory=dict)

    @property
    def n_failures(self) -> int:
        return sum(s.n_failures for s in self.stages)

    def describe(self) -> str:
        """The final summary: a table of the stages, the catalogue counts and the totals."""
        head = (f"{'stage':<12s} {'plate-MJDs':>10s} {'processed':>9s} {'skipped':>8s} "
                f"{'spectra':>9s} {'problems':>8s} {'time':>9s}")
        lines = [head, "-" * len(head)]
        for s in self.stages:
            lines.append(f"{s.stage:<12s} {s.n_tasks:10d} {s.n_done:9d} {s.n_skipped:8d} "
                         f"{s.n_spectra:9d} {s.n_failures:8d} {s.seconds:8.1f}s")
        if self.merge_counts:
            c = self.merge_counts
            lines.append(f"{'merge':<12s} {'-':>10s} {'-':>9s} {'-':>8s} "
                         f"{c['all']['spectra']:9d} {'-':>8s} {self.merge_seconds:8.1f}s")
            lines.append(
                f"catalogue: {c['all']['spectra']} spectra of {c['all']['plates']} plates "
                f"and {c['all']['exposures']} exposures; clean {c['clean']['spectra']}, "
                f"removed {c['removed']['spectra']} (reasons in merge/removed.fits)")
        peak = max(self.peak_rss_mb.values(), default=float("nan"))
        lines.append(f"total {self.seconds:.1f} s on {self.executor}; peak memory per worker "
                     f"{peak:.0f} MB; outputs in {self.out}")
        if self.n_failures:
            lines.append(f"{self.n_failures} problems recorded: {self.out / 'failures'}/ "
                         f"(and {self.out / LOG_NAME})")
        return "\n".join(lines)


def _stage_range(first: str, last: str) -> tuple[str, ...]:
    for name in (first, last):
        if name not in STAGES:
            raise SkyModellingError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    i, j = STAGES.index(first), STAGES.index(last)
    if i > j:
        raise SkyModellingError(f"--from {first} comes after --to {last} "
                                f"(order: {' -> '.join(STAGES)})")
    return STAGES[i:j + 1]


class _RunLog:
    """Attach ``OUT/run.log`` to the package's logger for the length of a run."""

    def __init__(self, path: Path):
        self.path = path
        self.logger = logging.getLogger("skymodelling")
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setLevel(logging.INFO)
        self.handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        self.level = self.logger.level

    def __enter__(self):
        self.logger.addHandler(self.handler)
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
        self.handler.close()


def _log_failures(out: Path, stage: str) -> None:
    table = read_failures(out, stage)
    for row in table[:_LOG_FAILURES]:
        log.warning("  problem: %s plate %d MJD %d exposure %d %s %s: %s", row["STAGE"],
                    row["PLATE"], row["MJD"], row["EXPID"], row["CAMERA"], row["FILE"],
                    row["REASON"])
    if len(table) > _LOG_FAILURES:
        log.warning("  ... and %d more in %s", len(table) - _LOG_FAILURES, out / "failures")


def _run_stage(stage: str, raw, out: Path, config: Config, executor: Executor, *,
               clouds, plates, strict, force=False, spectra=None):
    return registry.get(stage).run(raw, out, config, strict=strict, force=force,
                                   workers=executor.workers, executor=executor,
                                   plates=plates, clouds=clouds, spectra=spectra)


def check_inputs(raw, out, stages, plates=None) -> None:
    """Fail early, in one line and before anything is written, on what a user can get wrong:
    a missing RAW tree (when extract runs), requested plates RAW does not hold, or a
    missing OUT when the run starts after extract."""
    out = Path(out)
    if "extract" in stages:
        if raw is None or not Path(raw).is_dir():
            raise SkyModellingError(f"{raw}: no such directory (RAW must be a BOSS reduction "
                                    "tree, RAW/<run2d>/<plate>/...)")
        if plates is not None:
            from .stages._common import check_plates
            from .stages.extract import discover_plates

            check_plates(plates, [t.plate for t in discover_plates(raw, plates)], raw)
    elif not out.is_dir():
        raise SkyModellingError(f"{out}: no such output folder (run from extract first)")


def run_pipeline(raw, out, config: Config | None = None, *, first: str = "extract",
                 last: str = "merge", executor: Executor | None = None, workers: int | None = None,
                 clouds=None, plates=None, strict: bool = False,
                 show: bool = True, force=(), decompose_spectra: str | None = None
                 ) -> RunSummary:
    """Run the stages ``first`` to ``last`` on ``raw`` into ``out``.

    Parameters
    ----------
    raw : path-like or None
        The BOSS reduction tree (needed only when extract runs).
    out : path-like
        Output folder; every stage writes under it, the log goes to ``OUT/run.log``.
    config : Config, optional
        Settings of every stage (docs/*.md); recorded in every output and the log.
    first, last : str
        The first and last stage to run (``STAGES``); earlier stages must have
        been run already.
    executor : Executor, optional
        Where the tasks run; default a process pool of ``workers`` processes
        (closed afterwards). A given executor is left open for the caller.
    workers : int, optional
        Size of the default process pool (default: CPUs, at most 4).
    clouds : path-like, optional
        Photometricity table for enrich (``skymodelling enrich --clouds``).
    plates : iterable of int, optional
        Only these plates in extract and enrich (later stages take every
        complete output they find).
    strict : bool
        Stop at the first problem instead of recording it in ``OUT/failures``.
    show : bool
        Print each stage's one-line summary as it finishes.
    force : bool or iterable of str
        Stages whose outputs are redone even when complete and current (True: every
        stage run). Without it a rerun redoes only outputs whose inputs, settings,
        tables or algorithm version changed (:mod:`skymodelling.stages.keys`).
    decompose_spectra : {"mean", "fibres", "both"}, optional
        What decompose decomposes (``skymodelling decompose --spectra``; default the mean
        spectra). "fibres" and "both" add the per-fibre decomposition that merge joins.

    Returns
    -------
    RunSummary
    """
    config = config or Config()
    out = Path(out)
    stages = _stage_range(first, last)
    forced = set(STAGES) if force is True else set(force or ())
    unknown = forced - set(STAGES)
    if unknown:
        raise SkyModellingError(f"--force: unknown stage(s) {', '.join(sorted(unknown))}; "
                                f"stages are {', '.join(STAGES)}")
    if decompose_spectra is not None and decompose_spectra not in ("mean", "fibres", "both"):
        raise SkyModellingError(f"decompose_spectra must be mean, fibres or both, not "
                                f"{decompose_spectra!r}")
    check_inputs(raw, out, stages, plates)
    out.mkdir(parents=True, exist_ok=True)
    own = executor is None
    t0 = time.perf_counter()
    with _RunLog(out / LOG_NAME):
        if own:
            executor = make_executor("process", workers=workers)
        try:
            summary = RunSummary(out=out, executor=executor.describe())
            log.info("=== skymodelling %s run: %s (%s) ===", __version__, " -> ".join(stages),
                     " ".join(sys.argv[1:]) or "from Python")
            log.info("RAW %s, OUT %s, executor %s", raw, out, summary.executor)
            log.info("configuration %s", config.to_json())
            for stage in stages:
                log.info("%s: started", stage)
                t_stage = time.perf_counter()
                try:
                    result = _run_stage(stage, raw, out, config, executor, clouds=clouds,
                                        plates=plates, strict=strict, force=stage in forced,
                                        spectra=decompose_spectra)
                except SkyModellingError as exc:
                    log.info("%s: stopped: %s", stage, exc)   # the caller reports it
                    raise
                except Exception:
                    log.exception("%s: stopped by an error", stage)
                    raise
                if stage == "merge":
                    summary.merge_counts = result
                    summary.merge_seconds = time.perf_counter() - t_stage
                    from .stages.merge import describe_counts

                    log.info("merge: catalogue\n%s", describe_counts(result))
                    continue
                # decompose --spectra both: one summary per mode
                for part in result if isinstance(result, list) else [result]:
                    summary.stages.append(part)
                    log.info("%s", part.describe())
                    if show:
                        print(part.describe(), flush=True)
                    if part.n_failures:
                        _log_failures(out, part.stage)
            summary.peak_rss_mb = executor.peak_rss_mb
            summary.seconds = time.perf_counter() - t0
            log.info("run finished\n%s", summary.describe())
        finally:
            if own:
                executor.close()
    return summary


__all__ = ["run_pipeline", "check_inputs", "RunSummary", "STAGES", "LOG_NAME"]
