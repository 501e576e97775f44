"""What every stage runner shares: completion markers, failure records, provenance, mapping.

An output is complete when its marker (``<output>.done``, JSON, written after
the output was renamed into place) exists, names the output's size and was
made with the same stage settings; anything else is redone.  Failures are
one CSV per task under ``OUT/failures/`` (plate, exposure, camera, file,
reason), replaced on every rerun of the task.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .. import __version__
from .._atomic import write_text_atomic
from ..errors import BossFileError
from ..io import products

log = logging.getLogger(__name__)

FAILURE_FIELDS = ("STAGE", "PLATE", "MJD", "EXPID", "CAMERA", "FILE", "REASON")


@dataclass
class FailureLog:
    """Problems met by one task; each is one row of ``OUT/failures``."""

    stage: str
    plate: int = -1
    mjd: int = -1
    rows: list = field(default_factory=list)

    def add(self, reason: str, *, expid: int = -1, camera: str = "", file="") -> None:
        self.rows.append({"STAGE": self.stage, "PLATE": self.plate, "MJD": self.mjd,
                          "EXPID": expid, "CAMERA": camera, "FILE": str(file),
                          "REASON": " ".join(str(reason).split())})
        log.warning("%s %s-%s %s %s: %s", self.stage, self.plate, self.mjd,
                    camera or "", expid if expid >= 0 else "", reason)

    def path(self, out) -> Path:
        return Path(out) / "failures" / f"{self.stage}-{self.plate:04d}-{self.mjd:05d}.csv"

    def write(self, out) -> None:
        """Write the task's failures (or remove a stale file when there are none)."""
        path = self.path(out)
        if not self.rows:
            path.unlink(missing_ok=True)
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FAILURE_FIELDS)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(path, buf.getvalue())


@dataclass
class StageSummary:
    """What a stage run did (printed by the command line)."""

    stage: str
    n_tasks: int = 0
    n_done: int = 0
    n_skipped: int = 0
    n_spectra: int = 0
    n_failures: int = 0
    seconds: float = 0.0
    n_redone: int = 0
    n_new_failures: int = 0

    def add(self, result: dict) -> None:
        """Account for one task's result dict (skipped, n_spectra, n_failures, redone)."""
        self.n_redone += bool(result.get("redone"))
        self.n_skipped += bool(result["skipped"])
        self.n_done += not result["skipped"]
        self.n_spectra += int(result["n_spectra"])
        self.n_failures += int(result["n_failures"])
        self.n_new_failures += int(result["n_failures"])

    def finish(self, out, t0: float) -> None:
        """Count failures recorded by earlier runs of skipped tasks too; set the time."""
        import time

        if self.n_skipped:
            self.n_failures = len(read_failures(out, self.stage))
        self.seconds = time.perf_counter() - t0

    def describe(self) -> str:
        # mean and decompose (of the means) count mean spectra, the others sky-fibre spectra
        what = "mean spectra" if self.stage in ("mean", "decompose") else "sky spectra"
        earlier = (f" ({self.n_failures - self.n_new_failures} by earlier runs of the outputs "
                   "kept)" if self.n_failures != self.n_new_failures else "")
        redone = (f", {self.n_redone} of them redone as their inputs, settings or code "
                  "changed" if self.n_redone else "")
        return (f"{self.stage}: {self.n_tasks} plate-MJDs ({self.n_done} processed{redone}, "
                f"{self.n_skipped} already complete), {self.n_spectra} {what}, "
                f"{self.n_failures} problems recorded{earlier}, {self.seconds:.1f} s")


def read_failures(out, stage: str | None = None) -> Table:
    """All recorded failures of ``OUT`` (optionally of one stage) as a Table."""
    rows = []
    folder = Path(out) / "failures"
    pattern = f"{stage}-*.csv" if stage else "*.csv"
    for path in sorted(folder.glob(pattern)):
        with open(path, newline="") as fh:
            rows.extend(csv.DictReader(fh))
    table = Table(rows=rows, names=FAILURE_FIELDS) if rows else Table(
        names=FAILURE_FIELDS, dtype=["U16", "i4", "i4", "i8", "U4", "U256", "U512"])
    for name in ("PLATE", "MJD", "EXPID"):
        table[name] = table[name].astype(int)
    return table


marker_path = products.marker_path
marker_info = products.marker_info
output_signature = products.upstream_signature


def _plain(obj):
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def check_current(output: Path, stage: str, config, inputs=None) -> tuple[bool, str]:
    """Whether ``output`` is complete and was made from the same settings, tables, algorithm
    version and ``inputs`` (:mod:`.keys`); when not, the reason, in words."""
    from . import keys

    if not output.is_file():
        return False, "no complete output"
    info = marker_info(output)
    digest = keys.stage_digest(stage, config)
    inputs = _plain(inputs)
    if (info.get("size") == output.stat().st_size and info.get("config") == digest
            and info.get("inputs") == inputs):
        return True, ""
    return False, keys.explain(info, keys.stage_parts(stage, config), inputs)


def is_current(output: Path, stage: str, config, inputs=None) -> bool:
    """True if ``output`` is complete and current (:func:`check_current`)."""
    return check_current(output, stage, config, inputs)[0]


def mark_complete(output: Path, stage: str, config, inputs=None, **info) -> None:
    """Write the completion marker of ``output`` (call after the output is in place).

    The marker records the output's size, the stage digest (``config``), the readable parts
    of the key (``parts``), the ``inputs`` signatures, and ``key``: one hash of all of
    them, which downstream stages record as their input signature.
    """
    from . import keys

    digest = keys.stage_digest(stage, config)
    inputs = _plain(inputs)
    payload = {"size": output.stat().st_size, "config": digest,
               "key": keys.output_key(digest, inputs), "parts": keys.stage_parts(stage, config),
               "inputs": inputs, "version": __version__, "deps": keys.dependency_versions(),
               **info}
    write_text_atomic(marker_path(output), json.dumps(payload, sort_keys=True))


def remove_stale_parts(folder: Path) -> None:
    """Delete temporary files left by a killed run (``.<name>.<random>.part<suffix>``)."""
    for part in Path(folder).glob("*/.*.part*"):
        part.unlink(missing_ok=True)


def invalidate(output: Path) -> None:
    """Forget that ``output`` was complete (before it is rewritten)."""
    marker_path(output).unlink(missing_ok=True)


def provenance_cards(stage: str, config) -> list[tuple]:
    """Header cards recording the package version, the dependencies' versions and the
    configuration."""
    from . import keys

    deps = json.dumps(keys.dependency_versions(), sort_keys=True, separators=(",", ":"))
    return [("SMVERS", __version__, "skymodelling version"),
            ("SMSTAGE", stage, "pipeline stage that wrote this file"),
            ("SMALGO", keys.ALGORITHM[stage], "algorithm version of this stage"),
            ("SMDEPS", deps, "versions of the dependencies (JSON)"),
            ("SMCONFIG", config.to_json(), "configuration (JSON)"),
            ("SMCFGSUM", keys.stage_digest(stage, config),
             "hash of settings, tables, algorithm")]


def primary_hdu(stage: str, config, **cards) -> fits.PrimaryHDU:
    hdu = fits.PrimaryHDU()
    for key, value, comment in provenance_cards(stage, config):
        hdu.header[key] = (value, comment)
    for key, value in cards.items():
        hdu.header[key] = value
    return hdu


def map_tasks(func, tasks: list, workers: int, desc: str, unit: str = "plate", executor=None):
    """Yield ``func(task)`` for every task (in completion order) with a progress bar.

    ``executor`` (:mod:`skymodelling.executors`) says where the tasks run; without
    one, ``workers > 1`` uses a process pool for this call only and 1 runs them
    here. Each task is a picklable tuple and returns a small summary dict, so no
    large array travels between processes. The bar shows the plates done and,
    from the summaries, the spectra and the problems recorded so far.
    """
    from tqdm import tqdm

    from ..executors import ProcessExecutor, SerialExecutor

    own = executor is None
    if own:
        executor = (SerialExecutor() if workers <= 1 or len(tasks) <= 1
                    else ProcessExecutor(min(workers, len(tasks))))
    bar = tqdm(total=len(tasks), desc=f"{desc:<9s}", unit=unit, file=sys.stderr,
               disable=not sys.stderr.isatty() and len(tasks) < 2)
    spectra = problems = 0
    try:
        for result in executor.map_unordered(func, tasks):
            if isinstance(result, dict):
                spectra += int(result.get("n_spectra", 0))
                problems += int(result.get("n_failures", 0))
                bar.set_postfix(spectra=spectra, problems=problems, refresh=False)
            bar.update()
            yield result
    finally:
        bar.close()
        if own:
            executor.close()



def camera_arrays(hdul, path, camera: str, wave_hdu: str | None = None):
    """WAVE, FLUX and IVAR (float64) of ``camera`` in an extract or mean output.

    ``wave_hdu`` names the wavelength HDU when it is not ``<CAM>_WAVE`` (the mean
    files share one ``B_WAVE``/``R_WAVE`` grid per arm). A missing HDU is a
    BossFileError naming the file and the HDU.
    """
    cam = camera.upper()
    try:
        return tuple(np.asarray(hdul[name].data, dtype=float)
                     for name in (wave_hdu or f"{cam}_WAVE", f"{cam}_FLUX", f"{cam}_IVAR"))
    except KeyError as exc:
        raise BossFileError(path, f"no {exc.args[0]} HDU for camera {camera}") from exc

def check_plates(wanted, found, where: str) -> None:
    """A one-line error naming the requested plates that ``where`` does not hold."""
    if wanted is None:
        return
    missing = sorted({int(p) for p in wanted} - {int(p) for p in found})
    if missing:
        from ..errors import SkyModellingError

        have = sorted({int(p) for p in found})
        listed = ", ".join(map(str, have[:10])) + (" ..." if len(have) > 10 else "")
        raise SkyModellingError(
            f"plate(s) {', '.join(map(str, missing))} not in {where} (it holds "
            f"{listed or 'no plate'}); check --plates")


def extract_outputs(out) -> list[Path]:
    """The complete extract outputs under ``OUT`` (the inputs of the later stages)."""
    from ..errors import SkyModellingError

    sources = products.SKY.files(out)
    if not sources:
        raise SkyModellingError(f"{out}: no complete extract output (run skymodelling extract)")
    return sources


def run_tasks(stage: str, func, tasks: list, out, workers: int, executor=None, *,
              name: str | None = None) -> StageSummary:
    """Run a stage's per-plate tasks (after clearing a killed run's temporary files in
    ``OUT/<stage>``); ``name`` labels the summary and its problems when not ``stage``."""
    import time

    t0 = time.perf_counter()
    remove_stale_parts(Path(out) / stage)
    summary = StageSummary(name or stage, n_tasks=len(tasks))
    for result in map_tasks(func, tasks, workers, desc=stage, executor=executor):
        summary.add(result)
    summary.finish(out, t0)
    return summary


def reuse_or_redo(target: Path, stage: str, config, inputs, *, force: bool = False,
                  where: str = "") -> tuple[bool, str]:
    """Decide whether a task's ``target`` can be reused.

    Returns ``(True, "")`` when it is complete and current (:func:`check_current`) and not
    ``force``-d; otherwise forgets its marker and returns ``(False, reason)``, logging the
    reason when an output existed (a changed input, setting, table or algorithm version).
    """
    current, reason = check_current(target, stage, config, inputs)
    if current and not force:
        return True, ""
    if force:
        reason = "forced (--force)"
    existed = marker_path(target).is_file() or target.is_file()
    invalidate(target)
    if existed:
        log.info("%s %s: redone (%s)", stage, where or target.name, reason)
        return False, reason
    return False, ""


def run_task(stage: str, plate: int, mjd: int, out, config, strict: bool, *, target: Path,
             inputs, work, force: bool = False, source="") -> dict:
    """The one skeleton of every per-plate task.

    Skips the plate when ``target`` is complete and was made from the same ``inputs``
    with the same settings, tables and algorithm (:func:`reuse_or_redo`; ``force``
    redoes it anyway); otherwise calls ``work(target, plate, mjd, failures)``, which
    writes ``target`` atomically, records per-exposure problems in ``failures`` and
    returns the number of spectra, then marks ``target`` complete. A
    :class:`~skymodelling.errors.SkyModellingError` or OSError from ``work`` is recorded
    in ``OUT/failures`` (raised with ``strict``) and leaves no marker. Returns the task's
    summary dict (plate, mjd, n_spectra, skipped, n_failures, seconds, redone).
    """
    import time

    from ..errors import SkyModellingError

    t0 = time.perf_counter()
    failures = FailureLog(stage, plate, mjd)
    summary = {"plate": plate, "mjd": mjd, "n_spectra": 0, "skipped": False, "n_failures": 0,
               "seconds": 0.0, "redone": ""}
    skip, summary["redone"] = reuse_or_redo(target, stage, config, inputs, force=force,
                                            where=f"{plate:04d}-{mjd:05d}")
    if skip:
        summary.update(skipped=True, n_spectra=marker_info(target).get("n_spectra", 0))
        return summary
    try:
        n_spectra = work(target, plate, mjd, failures)
    except (SkyModellingError, OSError) as exc:
        if strict:
            raise
        failures.add(getattr(exc, "reason", None) or str(exc),
                     file=getattr(exc, "path", None) or source)
        failures.write(out)
        summary["n_failures"] = len(failures.rows)
        return summary
    mark_complete(target, stage, config, inputs, n_spectra=n_spectra)
    failures.write(out)
    summary.update(n_spectra=n_spectra, n_failures=len(failures.rows),
                   seconds=time.perf_counter() - t0)
    return summary


def task_failure(stage: str, plate: int, mjd: int, out, reason: str, *, file="",
                 strict: bool = False) -> dict:
    """A task that cannot start (no input to key it by): record ``reason`` and return the
    summary dict (raise it as a SkyModellingError with ``strict``)."""
    from ..errors import SkyModellingError

    if strict:
        raise SkyModellingError(f"{file}: {reason}" if file else reason)
    failures = FailureLog(stage, plate, mjd)
    failures.add(reason, file=file)
    failures.write(out)
    return {"plate": plate, "mjd": mjd, "n_spectra": 0, "skipped": False, "n_failures": 1,
            "seconds": 0.0, "redone": ""}


def plate_task(stage: str, source: Path, out, config, strict: bool, *, target_of, inputs,
               work, force: bool = False) -> dict:
    """:func:`run_task` for a task that reads one earlier output file ``source`` (its
    plate and MJD from its header, its output at ``target_of(out, plate, mjd)``)."""
    header = fits.getheader(source)
    plate, mjd = int(header["PLATE"]), int(header["MJD"])
    return run_task(stage, plate, mjd, out, config, strict, target=target_of(out, plate, mjd),
                    inputs=inputs, work=work, force=force, source=source)
