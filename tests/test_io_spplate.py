"""spPlate headers (real one from pydl, synthetic overflow) and round trip."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skymodelling.errors import BossFileError
from skymodelling.io.plugmap import empty_plugmap
from skymodelling.io.spplate import (
    ExposureId,
    parse_expid_cards,
    read_spplate,
    write_spplate,
)


def _real_spplate() -> Path:
    spec = importlib.util.find_spec("pydl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pydl (test dependency) is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), "pydlspec2d", "tests", "t",
                "spPlate-4055-55359-0020.fits")
    if not path.is_file():
        pytest.skip("pydl does not ship spPlate-4055-55359-0020.fits")
    return path


def test_real_spplate_header():
    sp = read_spplate(_real_spplate())
    assert (sp.plate, sp.mjd, sp.nexp) == (4055, 55359, 24)
    assert len(sp.exposures) == 24 and sp.complete
    assert sp.exposures[0].as_dict() == {"camera": "b1", "expid": 116475, "flat": 116481,
                                         "arc": 116482}
    assert sp.nexp_per_camera == {"b1": 6, "b2": 6, "r1": 6, "r2": 6}
    assert sp.expids() == list(range(116475, 116481))
    assert sp.expids("r2") == list(range(116475, 116481))
    assert {e.camera for e in sp.exposures} == {"b1", "b2", "r1", "r2"}
    assert {(e.flat, e.arc) for e in sp.exposures} == {(116481, 116482)}
    assert sp.loglam.shape == (4637,)
    assert sp.loglam[0] == pytest.approx(3.5529) and np.diff(sp.loglam)[0] == pytest.approx(1e-4)
    assert sp.flux is None


def _header(n):
    h = fits.Header()
    h["PLATEID"] = 6138
    h["MJD"] = 56598
    h["NEXP"] = n
    for i in range(1, min(n, 99) + 1):
        h[f"EXPID{i:02d}"] = f"b1-{150000 + i:08d}-00149990-00149991"
    return h


def test_overflow_header():
    h = _header(136)
    # IDL's i2.2 format turns EXPID100..EXPID136 into one 'EXPID**' card, last one wins
    h.append(fits.Card.fromstring("EXPID** = 'r2-00150136-00149990-00149991'"))
    exposures, complete = parse_expid_cards(h)
    assert not complete
    assert len(exposures) == 100
    assert exposures[-1] == ExposureId("r2", 150136, 149990, 149991)
    exposures, complete = parse_expid_cards(_header(99))
    assert complete and len(exposures) == 99
    h = _header(5)
    h["NEXP"] = 6  # fewer cards than NEXP
    assert parse_expid_cards(h)[1] is False


def test_spplate_round_trip(tmp_path):
    nfib, npix = 1000, 50
    rng = np.random.default_rng(2)
    h = _header(4)
    h["COEFF0"] = 3.5529
    h["COEFF1"] = 1e-4
    h["NEXP_B1"] = 4
    flux = rng.random((nfib, npix), dtype=np.float32)
    mask = rng.integers(0, 1 << 20, (nfib, npix), dtype=np.int32)
    pm = empty_plugmap(nfib)
    pm["FIBERID"] = np.arange(1, nfib + 1)
    path = tmp_path / "spPlate-6138-56598.fits"
    write_spplate(path, h, flux, flux * 2, mask, mask | 1, flux + 1, pm, flux * 3)
    with fits.open(path) as hdul:
        assert [x.name for x in hdul] == ["PRIMARY", "IVAR", "ANDMASK", "ORMASK", "WAVEDISP",
                                          "PLUGMAP", "SKY"]
    sp = read_spplate(path, data=True)
    assert sp.nexp_per_camera == {"b1": 4, "b2": 0, "r1": 0, "r2": 0}
    assert sp.complete and sp.expids() == [150001, 150002, 150003, 150004]
    np.testing.assert_array_equal(sp.sky, flux * 3)
    np.testing.assert_array_equal(sp.ormask, mask | 1)
    assert sp.andmask.dtype == np.int32 and sp.andmask.dtype.isnative
    assert len(sp.plugmap) == nfib
    np.testing.assert_allclose(sp.loglam, 3.5529 + 1e-4 * np.arange(npix))
    with pytest.raises(BossFileError, match="no such file"):
        read_spplate(tmp_path / "spPlate-0001-55555.fits")
