"""``skymodelling run --decompose-spectra`` and the decompositions in the merged catalogue."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from skymodelling.cli import main
from skymodelling.io import products
from skymodelling.pipeline import run_pipeline

slow = pytest.mark.slow   # the whole pipeline on a small tree, fibres decomposed: ~40 s


@pytest.fixture(scope="module")
def both_run(noiseless_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("runfibres") / "out"
    code = main(["run", str(noiseless_tree), str(out), "--executor", "serial",
                 "--decompose-spectra", "both"])
    return out, code


def _catalogue(out, name="all"):
    return Table.read(products.catalogue_path(out, name), hdu="CATALOG",
                      unit_parse_strict="silent", mask_invalid=False)


@slow
def test_run_both_makes_the_mean_and_fibre_decompositions(both_run):
    out, code = both_run
    assert code == 0
    assert products.DECOMP.files(out) and products.DECOMP_FIBRES.files(out)
    for path in products.DECOMP.files(out) + products.DECOMP_FIBRES.files(out):
        assert products.is_complete(path)
    log = (out / "run.log").read_text()
    assert "decompfibres:" in log and "decompose:" in log


@slow
def test_catalogue_carries_the_mean_decomposition_of_each_exposure_camera(both_run):
    out, _ = both_run
    cat = _catalogue(out)
    for col in ("DECOMP_OI5577_FLUX", "DECOMP_OI5577_FLUX_ERR", "DECOMP_RCHI2", "DECOMP_FLAG",
                "DECOMPFIB_OI5577_FLUX", "DECOMPFIB_OI5577_FLUX_ERR", "DECOMPFIB_RCHI2",
                "DECOMPFIB_FLAG"):
        assert col in cat.colnames, col
    assert cat["DECOMP_OI5577_FLUX"].unit is not None
    dec = Table.read(products.DECOMP.files(out)[0], hdu="DECOMPMETA", mask_invalid=False)
    cams = np.char.strip(np.asarray(cat["CAMERA"]).astype(str))
    for row in dec:
        sel = ((np.asarray(cat["IMG"]) == row["IMG"]) & (np.asarray(cat["PLATE"]) == row["PLATE"])
               & (cams == str(row["CAMERA"]).strip()))
        assert sel.sum() > 1                    # every fibre row of the exposure-camera
        np.testing.assert_array_equal(np.asarray(cat["DECOMP_OI6300_FLUX"])[sel],
                                      float(row["OI6300_FLUX"]))
        np.testing.assert_array_equal(np.asarray(cat["DECOMP_FLAG"])[sel], int(row["FLAG"]))
    # per fibre: the fibre table's own values, matched by fibre
    fib = Table.read(products.DECOMP_FIBRES.files(out)[0], hdu="DECOMPFIBRES", mask_invalid=False)
    fcams = np.char.strip(np.asarray(fib["CAMERA"]).astype(str))
    for k in (0, len(fib) // 2, len(fib) - 1):
        sel = ((np.asarray(cat["IMG"]) == fib["IMG"][k]) & (cams == fcams[k])
               & (np.asarray(cat["FIB"]) == fib["FIB"][k]))
        assert sel.sum() == 1
        np.testing.assert_array_equal(np.asarray(cat["DECOMPFIB_OI5577_FLUX"])[sel],
                                      np.asarray(fib["OI5577_FLUX"])[k])
    # the joined fluxes are no lines-stage measurement: the clean cut is unchanged
    from skymodelling.stages.merge import line_measure_columns

    assert not any(c.startswith("DECOMP") for c in line_measure_columns(cat))
    # and the Parquet catalogue has them, with units
    import pyarrow.parquet as pq

    schema = pq.read_schema(products.catalogue_path(out, "clean", "parquet"))
    assert schema.field("DECOMP_OI5577_FLUX").metadata[b"unit"]


@slow
def test_rerun_skips_both_modes_and_the_catalogue_follows_a_new_fibre_run(both_run, tmp_path):
    import shutil

    src, _ = both_run
    out = tmp_path / "out"
    shutil.copytree(src, out)
    summary = run_pipeline(None, out, first="decompose", decompose_spectra="both", show=False,
                           workers=1)
    parts = [s for s in summary.stages]
    assert [p.stage for p in parts] == ["decompose", "decompfibres"]
    assert all(p.n_skipped == p.n_tasks > 0 for p in parts)
    # without the fibre decompositions, merge is redone and drops the per-fibre columns
    for path in products.DECOMP_FIBRES.files(out):
        products.marker_path(path).unlink()
    run_pipeline(None, out, first="merge", show=False, workers=1)
    cat = _catalogue(out)
    assert "DECOMP_OI5577_FLUX" in cat.colnames and "DECOMPFIB_OI5577_FLUX" not in cat.colnames


def test_decompose_spectra_choices_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "raw", str(tmp_path), "--decompose-spectra", "objects"])
    from skymodelling.errors import SkyModellingError

    with pytest.raises(SkyModellingError, match="decompose_spectra"):
        run_pipeline(None, tmp_path, first="decompose", decompose_spectra="objects")


def test_join_fills_rows_without_a_decomposition():
    from skymodelling.stages.merge import NO_DECOMP_FLAG, join_decomposition

    meta = Table({"PLATE": [1, 1, 1], "IMG": [5, 5, 6], "CAMERA": ["b1", "r1 ", "b1"]})
    dec = Table({"PLATE": [1, 1], "IMG": [5, 5], "CAMERA": ["r1", "b1"],
                 "OI5577_FLUX": [2.0, 1.0], "OI5577_FLUX_ERR": [0.2, 0.1],
                 "RCHI2": [1.5, 1.1], "FLAG": [4, 0], "LSF_SIGMA": [1.0, 1.0]})
    dec["OI5577_FLUX"].unit = "1e-17 erg / (s cm2)"
    t = join_decomposition(meta.copy(), dec, ("PLATE", "IMG", "CAMERA"), "DECOMP_")
    np.testing.assert_array_equal(t["DECOMP_OI5577_FLUX"], [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(t["DECOMP_FLAG"], [0, 4, NO_DECOMP_FLAG])
    assert "DECOMP_LSF_SIGMA" not in t.colnames
    assert str(t["DECOMP_OI5577_FLUX"].unit) == str(dec["OI5577_FLUX"].unit)
