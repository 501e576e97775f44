"""skymodelling run: the whole pipeline on serial, process-pool and Dask executors."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skymodelling.cli import main
from skymodelling.errors import SkyModellingError
from skymodelling.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    make_executor,
)
from skymodelling.pipeline import LOG_NAME, STAGES, run_pipeline


def _square(x):
    return x * x


def _fail_on_three(x):
    if x == 3:
        raise ValueError("task three is broken")
    return x


@pytest.mark.parametrize("make", [SerialExecutor, lambda: ProcessExecutor(2)])
def test_executor_maps_every_task_and_reports_memory(make):
    with make() as ex:
        assert sorted(ex.map_unordered(_square, range(7))) == [x * x for x in range(7)]
        peaks = ex.peak_rss_mb
    assert peaks and all(10 < mb < 100_000 for mb in peaks.values())


def test_executor_raises_a_task_error():
    with ProcessExecutor(2) as ex, pytest.raises(ValueError, match="task three"):
        list(ex.map_unordered(_fail_on_three, range(6)))


def _malloc_env(_=None):
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_dask_workers_keep_glibc_adaptive_and_are_warm(monkeypatch):
    """No MALLOC_TRIM_THRESHOLD_ from Dask's nanny (it made every task ~40 % slower)."""
    pytest.importorskip("distributed")
    import sys

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with DaskExecutor(n_workers=1) as ex:
        assert list(ex.map_unordered(_malloc_env, [0])) == [None]
        loaded = ex.client.run(lambda: "skymodelling.stages.enrich" in sys.modules)
    assert loaded and all(loaded.values())


def test_dask_executor_joins_a_running_cluster_and_warns_of_slow_workers(tmp_path, monkeypatch,
                                                                        caplog):
    import json
    import logging

    distributed = pytest.importorskip("distributed")
    # the workers of a cluster started with Dask's defaults get this; restored afterwards
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=40) as cluster:
        scheduler_file = tmp_path / "scheduler.json"
        scheduler_file.write_text(json.dumps({"address": cluster.scheduler_address}))
        for where in (cluster.scheduler_address, str(scheduler_file)):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="skymodelling"):
                with DaskExecutor(scheduler=where) as ex:
                    assert sorted(ex.map_unordered(_square, range(5))) == [0, 1, 4, 9, 16]
                    assert ex.workers == 1
            assert "MALLOC_TRIM_THRESHOLD_=65536" in caplog.text, where
        assert cluster.status.name == "running"   # the executor leaves it to its owner


def test_make_executor_choices():
    assert isinstance(make_executor("process", workers=1), SerialExecutor)
    with make_executor("process", workers=2) as ex:
        assert isinstance(ex, ProcessExecutor) and ex.workers == 2
    with pytest.raises(SkyModellingError, match="unknown executor"):
        make_executor("nonsense")


def _files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.is_file() and p.name != LOG_NAME)


def _same_fits(a: Path, b: Path) -> None:
    with fits.open(a) as ha, fits.open(b) as hb:
        assert len(ha) == len(hb)
        for x, y in zip(ha, hb, strict=True):
            keys = [k for k in x.header if k != "DATE"]
            assert keys == [k for k in y.header if k != "DATE"], a
            for k in keys:
                assert x.header[k] == y.header[k], (a, k)
            if isinstance(x, fits.BinTableHDU):
                for name in x.columns.names:
                    u, v = x.data[name], y.data[name]
                    if u.dtype.kind == "f":
                        np.testing.assert_array_equal(u, v, err_msg=f"{a} {name}")
                    else:
                        assert np.array_equal(u, v), (a, name)
            elif x.data is not None:
                np.testing.assert_array_equal(x.data, y.data)


def assert_same_outputs(ref: Path, other: Path) -> None:
    """Every output identical: byte for byte, except the catalogue's creation DATE."""
    import pyarrow.parquet as pq

    assert _files(ref) == _files(other)
    for name in _files(ref):
        a, b = ref / name, other / name
        if not name.startswith("merge"):
            assert a.read_bytes() == b.read_bytes(), name
        elif name.endswith(".fits"):
            _same_fits(a, b)
        elif name.endswith(".parquet"):
            ta, tb = pq.read_table(a), pq.read_table(b)
            assert ta.schema.remove_metadata() == tb.schema.remove_metadata()
            for col in ta.column_names:
                u = ta[col].to_numpy(zero_copy_only=False)
                v = tb[col].to_numpy(zero_copy_only=False)
                if u.dtype == object and len(u) and isinstance(u[0], np.ndarray):
                    u, v = np.stack(u), np.stack(v)
                np.testing.assert_array_equal(u, v, err_msg=f"{name} {col}")
        else:
            assert a.read_bytes() == b.read_bytes(), name


@pytest.fixture(scope="module")
def serial_run(sim_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "serial"
    with SerialExecutor() as ex:
        summary = run_pipeline(sim_tree, out, executor=ex, show=False)
    return out, summary


def test_serial_run_makes_every_stage(serial_run):
    out, summary = serial_run
    assert [s.stage for s in summary.stages] == list(STAGES[:-1])
    assert summary.merge_counts["all"]["spectra"] == summary.stages[0].n_spectra > 0
    assert all(s.n_done == s.n_tasks == 2 for s in summary.stages)
    assert summary.n_failures == 0
    for stage in STAGES:
        assert any((out / stage).rglob("*.fits")), stage
    text = (out / LOG_NAME).read_text()
    for stage in STAGES:
        assert f"{stage}: started" in text
    assert "run finished" in text and '"decompose"' in text   # summary and configuration
    described = summary.describe()
    assert "peak memory per worker" in described and "catalogue:" in described


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["process", "dask"])
def test_engines_give_identical_outputs(engine, serial_run, sim_tree, tmp_path):
    ref, ref_summary = serial_run
    out = tmp_path / engine
    if engine == "process":
        executor = ProcessExecutor(2)
    else:
        pytest.importorskip("distributed")
        executor = DaskExecutor(n_workers=2)
    with executor:
        summary = run_pipeline(sim_tree, out, executor=executor, show=False)
        assert len(executor.peak_rss_mb) >= 1
    assert [s.n_spectra for s in summary.stages] == [s.n_spectra for s in ref_summary.stages]
    assert_same_outputs(ref, out)


def test_rerun_skips_and_resumes(serial_run, tmp_path):
    ref, _ = serial_run
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    # a damaged decompose output (size no longer matches its marker) is redone, alone
    victim = sorted((out / "decompose").rglob("decomp-*.fits"))[0]
    victim.write_bytes(victim.read_bytes()[:2880])
    with SerialExecutor() as ex:
        summary = run_pipeline(None, out, first="enrich", executor=ex, show=False)
    done = {s.stage: (s.n_done, s.n_skipped) for s in summary.stages}
    assert done == {"enrich": (0, 2), "lines": (0, 2), "mean": (0, 2), "decompose": (1, 1)}
    assert victim.read_bytes() == (ref / victim.relative_to(out)).read_bytes()
    assert (out / LOG_NAME).read_text().count("run finished") == 2


def test_cli_run_from_to(serial_run, tmp_path, capsys):
    ref, _ = serial_run
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    shutil.rmtree(out / "mean")
    code = main(["run", "unused-raw", str(out), "--from", "lines", "--to", "mean",
                 "--executor", "serial"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "mean" in printed and "decompose  " not in printed
    assert (out / "mean").is_dir()
    for name in _files(ref / "mean"):
        assert (out / "mean" / name).read_bytes() == (ref / "mean" / name).read_bytes()


def test_cli_run_rejects_bad_choices(tmp_path, capsys):
    assert main(["run", "raw", str(tmp_path), "--from", "merge", "--to", "extract"]) == 2
    assert "comes after" in capsys.readouterr().err
    assert main(["run", "raw", str(tmp_path), "--scheduler", "tcp://x:1"]) == 2
    assert "--executor dask" in capsys.readouterr().err


@pytest.mark.slow
def test_run_records_problems_and_exit_code(sim_tree, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(sim_tree, raw)
    frame = [f for f in sorted(raw.rglob("spCFrame-r1-*.fits*")) if "114439" not in f.name][-1]
    frame.write_bytes(b"not a FITS file")
    out = tmp_path / "out"
    code = main(["run", str(raw), str(out), "--executor", "serial", "--to", "enrich"])
    assert code == 1
    assert "problems recorded" in capsys.readouterr().out
    log = (out / LOG_NAME).read_text()
    assert "problem: extract" in log and frame.name in log


@pytest.mark.slow
def test_demo_runs_every_stage_and_says_where(serial_run, sim_tree, tmp_path, capsys):
    ref, _ = serial_run
    shutil.copytree(sim_tree, tmp_path / "raw")   # the demo reuses a complete simulated tree
    shutil.copytree(ref, tmp_path / "out")
    shutil.rmtree(tmp_path / "out" / "decompose")  # and redoes what is missing
    shutil.rmtree(tmp_path / "out" / "merge")
    code = main(["demo", str(tmp_path), "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "using the simulated tree already in" in printed
    for stage in STAGES:
        assert f"{stage}:" in printed or f"{stage} " in printed, stage
    assert "OI5577_FLUX" in printed and "reduced chi-square" in printed
    assert str(tmp_path / "out" / "merge") in printed
    for name in _files(ref / "decompose"):
        assert (tmp_path / "out" / "decompose" / name).is_file(), name
    assert (tmp_path / "out" / "merge" / "clean.fits").is_file()


def test_mean_decompositions_are_joined_row_by_row(serial_run, tmp_path):
    from astropy.table import Table

    from skymodelling import open_dataset

    ref, _ = serial_run
    assert len(open_dataset(ref).means.decomposition_files) == 2   # one per plate-MJD
    means = open_dataset(ref).means
    dec = means.decomposition
    assert len(dec) == len(means.meta)
    for key in ("PLATE", "MJD", "IMG", "ROW"):
        np.testing.assert_array_equal(np.asarray(dec[key]), np.asarray(means.meta[key]))
    assert not np.ma.is_masked(dec["RCHI2"]) and np.all(np.isfinite(dec["RCHI2"]))
    i = int(np.flatnonzero(np.char.strip(np.asarray(means.meta["CAMERA"]).astype(str))
                           == "r1")[-1])
    comp, spec = means.components(i), means.spectrum(i)
    np.testing.assert_array_equal(comp.WAVE, spec.WAVE)
    path = means.decomposition_files[int(dec["DFILE"][i])]
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(comp.CONT, hdul["R1_CONT"].data[int(dec["ROW"][i])])
        rows = Table.read(hdul["DECOMPMETA"])
    match = (rows["IMG"] == dec["IMG"][i]) & (np.char.strip(rows["CAMERA"].astype(str)) == "r1")
    assert float(rows["OI6300_FLUX"][match][0]) == float(dec["OI6300_FLUX"][i])
    # its fitted lines: the rows of FITLINES of this spectrum only, by wavelength
    lines = means.fitted_lines(i)
    assert len(lines) == int(dec["NLINES"][i]) and np.all(np.diff(lines["WAVE"]) > 0)
    assert comp.WAVE[0] <= lines["WAVE"][0] and lines["WAVE"][-1] <= comp.WAVE[-1]
    named = np.char.strip(np.asarray(lines["NAME"]).astype(str)) == "OI6300"
    assert float(lines["FLUX"][named].sum()) == pytest.approx(float(dec["OI6300_FLUX"][i]))
    assert str(lines["GROUP_FLUX"].unit) == str(lines["FLUX"].unit)
    # the model is the data within the noise
    good = spec.good & (comp.CONT != 0)
    chi2 = np.mean((spec.FLUX[good] - comp.CONT[good] - comp.LINES[good]) ** 2 * spec.IVAR[good])
    # RCHI2 divides by (good pixels - parameters), the mean here by the pixels
    assert 0.3 * float(dec["RCHI2"][i]) < chi2 <= 1.01 * float(dec["RCHI2"][i])
    # a spectrum whose decomposition is missing is masked, and says so
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    (out / path.relative_to(ref)).unlink()
    means = open_dataset(out).means
    lost = np.asarray(means.meta["PLATE"]) == int(dec["PLATE"][i])
    masked = np.ma.getmaskarray(means.decomposition["RCHI2"])
    assert lost.any() and np.all(masked[lost]) and not np.any(masked[~lost])
    with pytest.raises(SkyModellingError, match="no complete decomposition"):
        means.components(i)
    with pytest.raises(SkyModellingError, match="no complete decomposition"):
        means.fitted_lines(i)
