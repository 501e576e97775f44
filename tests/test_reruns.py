"""Correct reruns: a changed input, upstream setting, table or algorithm redoes exactly the
affected outputs and their downstream (skymodelling.stages.keys), and says so."""
from __future__ import annotations

import logging
import os
import shutil
from importlib import resources
from pathlib import Path

import pytest
from astropy.io import fits

from skymodelling.config import Config
from skymodelling.executors import SerialExecutor
from skymodelling.io import paths
from skymodelling.pipeline import run_pipeline
from skymodelling.stages import keys
from skymodelling.stages._common import marker_info, read_failures


def _run(raw, out, config=None, **kw):
    with SerialExecutor() as ex:
        summary = run_pipeline(raw, out, config, executor=ex, show=False, **kw)
    return {s.stage: (s.n_done, s.n_skipped) for s in summary.stages}


@pytest.fixture(scope="module")
def base_run(sim_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("reruns") / "base"
    _run(sim_tree, out)
    return out


@pytest.fixture
def copy_run(base_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(base_run, out)
    return out


def _other_plate(raw: Path) -> Path:
    return next(f for f in sorted(raw.glob("v5_7_0/*")) if f.name != "3985")


@pytest.mark.slow
def test_repaired_input_redoes_its_plate_and_downstream(sim_tree, base_run, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(sim_tree, raw, copy_function=os.link)
    folder = _other_plate(raw)
    victim = sorted(folder.glob("spFrame-r1-*.fits.gz"))[0]
    good = victim.read_bytes()
    victim.unlink()                       # hard link: the session's tree is untouched
    victim.write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    _run(raw, out, last="lines")
    assert len(read_failures(out, "extract")) == 1
    n_bad = len(fits.getdata(sorted((out / "extract").rglob(f"sky-{folder.name}-*.fits"))[0],
                             "META"))
    victim.unlink()
    victim.write_bytes(good)              # repaired: same name, new size and time
    done = _run(raw, out, last="lines")
    assert done == {"extract": (1, 1), "enrich": (1, 1), "lines": (1, 1)}
    assert len(read_failures(out, "extract")) == 0
    plate_file = sorted((out / "extract").rglob(f"sky-{folder.name}-*.fits"))[0]
    assert len(fits.getdata(plate_file, "META")) > n_bad
    ref = base_run / plate_file.relative_to(out)
    assert plate_file.read_bytes() == ref.read_bytes()
    assert _run(raw, out, last="lines") == {"extract": (0, 2), "enrich": (0, 2), "lines": (0, 2)}


def test_added_frame_redoes_its_plate(sim_tree, copy_run, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(sim_tree, raw, copy_function=os.link)
    folder = _other_plate(raw)
    src = sorted(folder.glob("spFrame-b1-*.fits.gz"))[0]
    shutil.copy(src, folder / paths.spframe_name("b1", 99999999))
    done = _run(raw, copy_run, last="extract")
    assert done == {"extract": (1, 1)}


@pytest.mark.slow
def test_upstream_setting_redoes_the_stages_that_read_it(copy_run, caplog):
    config = Config().replace("lines", fiber_area_arcsec2=2.5)
    with caplog.at_level(logging.INFO, logger="skymodelling"):
        done = _run(None, copy_run, config, first="enrich")
    # enrich does not read it; lines and mean do; decompose reads the new mean outputs
    assert done == {"enrich": (0, 2), "lines": (2, 0), "mean": (2, 0), "decompose": (2, 0)}
    mean_file = sorted((copy_run / "mean").rglob("mean-*.fits"))[0]
    assert fits.getheader(mean_file)["FIBAREA"] == 2.5
    assert "settings changed: lines.fiber_area_arcsec2" in caplog.text
    # a decompose setting redoes decompose alone
    config = Config().replace("decompose", detect_sigma=6.0)
    assert _run(None, copy_run, config, first="lines", last="decompose") == {
        "lines": (2, 0), "mean": (2, 0), "decompose": (2, 0)}  # back to the default area
    assert _run(None, copy_run, config, first="lines", last="decompose") == {
        "lines": (0, 2), "mean": (0, 2), "decompose": (0, 2)}


@pytest.mark.slow
def test_changed_line_list_content_redoes_lines_mean_decompose(copy_run, tmp_path):
    bundled = resources.files("skymodelling.data") / "sky_features.csv"
    user = tmp_path / "features.csv"
    user.write_text(bundled.read_text())
    config = Config().replace("lines", line_list=str(user))
    # the same content under another name: a different setting, so redone once
    first = _run(None, copy_run, config, first="lines", last="decompose")
    assert first == {"lines": (2, 0), "mean": (2, 0), "decompose": (2, 0)}
    assert _run(None, copy_run, config, first="lines", last="decompose") == {
        "lines": (0, 2), "mean": (0, 2), "decompose": (0, 2)}
    text = user.read_text().replace("OI5577,line,b,5578.889,5577.34,6.0,",
                                    "OI5577,line,b,5578.889,5577.34,5.0,")
    assert text != user.read_text()
    user.write_text(text)
    assert _run(None, copy_run, config, first="enrich", last="decompose") == {
        "enrich": (0, 2), "lines": (2, 0), "mean": (2, 0), "decompose": (2, 0)}
    info = marker_info(sorted((copy_run / "lines").rglob("lines-*.fits"))[0])
    assert info["parts"]["tables"]["line_list"] == keys.table_hash(user)


def test_algorithm_version_redoes_that_stage_and_below(copy_run, monkeypatch, caplog):
    monkeypatch.setitem(keys.ALGORITHM, "mean", keys.ALGORITHM["mean"] + 1)
    with caplog.at_level(logging.INFO, logger="skymodelling"):
        done = _run(None, copy_run, first="enrich", last="decompose")
    assert done == {"enrich": (0, 2), "lines": (0, 2), "mean": (2, 0), "decompose": (2, 0)}
    assert "algorithm version" in caplog.text
    header = fits.getheader(sorted((copy_run / "mean").rglob("mean-*.fits"))[0])
    assert header["SMALGO"] == keys.ALGORITHM["mean"]
    assert '"numpy"' in header["SMDEPS"]


def test_force(copy_run):
    assert _run(None, copy_run, first="enrich", force=("lines",)) == {
        "enrich": (0, 2), "lines": (2, 0), "mean": (0, 2), "decompose": (0, 2)}
    assert _run(None, copy_run, first="lines", last="mean", force=True) == {
        "lines": (2, 0), "mean": (2, 0)}
    with pytest.raises(Exception, match="unknown stage"):
        _run(None, copy_run, first="lines", force=("nope",))


@pytest.mark.slow
def test_killed_run_and_rerun_give_identical_outputs(sim_tree, base_run, tmp_path):
    from conftest import kill_when
    from test_run import assert_same_outputs

    out = tmp_path / "out"
    assert kill_when(["run", sim_tree, out, "--executor", "serial"], out, "mean/*/*.done"), \
        "the run did not reach mean in time"
    _run(sim_tree, out)
    (out / "run.log").unlink()
    assert_same_outputs(base_run, out)
