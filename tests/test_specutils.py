"""Handing spectra to specutils: ``Spectrum.to_specutils`` and ``MeanSpectrum.to_specutils``."""
from __future__ import annotations

import sys

import astropy.units as u
import numpy as np
import pytest

from skymodelling.dataset import MeanSpectrum, Spectrum
from skymodelling.errors import SkyModellingError

specutils = pytest.importorskip("specutils")


def _fibre():
    wave = np.linspace(3600.0, 3700.0, 6)
    ivar = np.array([4.0, 0.0, 1.0, 2.0, 1.0, 0.5])
    return Spectrum(WAVE=wave, FLUX=np.array([1.0, 9.0, 2.0, np.nan, 3.0, 4.0]), IVAR=ivar,
                    MASK=np.array([0, 1 << 22, 0, 0, 0, 0]), DISP=np.full(6, 0.8))


def test_fibre_spectrum_has_units_inverse_variance_mask_and_wavelength():
    from astropy.nddata import InverseVariance

    s = _fibre()
    sp = s.to_specutils()
    cls = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    assert isinstance(sp, cls)
    assert sp.flux.unit == u.Unit("1e-17 erg / (s cm2 Angstrom)")
    assert sp.spectral_axis.unit == u.AA
    np.testing.assert_array_equal(sp.spectral_axis.value, s.WAVE)
    assert isinstance(sp.uncertainty, InverseVariance)
    assert sp.uncertainty.unit == sp.flux.unit ** -2
    # masked: IVAR 0 and the non-finite flux; those pixels carry no weight
    np.testing.assert_array_equal(sp.mask, [False, True, False, True, False, False])
    np.testing.assert_array_equal(sp.uncertainty.array, [4.0, 0.0, 1.0, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal(sp.flux.value[~sp.mask], s.FLUX[s.good & np.isfinite(s.FLUX)])
    np.testing.assert_array_equal(sp.meta["MASK"], s.MASK)
    np.testing.assert_array_equal(sp.meta["DISP"], s.DISP)
    # specutils can work with it: the flux in another unit
    cgs = sp.flux.to(u.erg / u.s / u.cm ** 2 / u.AA)
    assert np.isclose(cgs.value[0], 1e-17)


def test_mean_spectrum_too():
    wave = 10.0 ** (3.5563 + 1e-4 * np.arange(4))
    m = MeanSpectrum(WAVE=wave, FLUX=np.ones(4), IVAR=np.array([1.0, 1.0, 0.0, 2.0]),
                     NUSED=np.array([30, 30, 0, 29]), MASK=np.array([0, 0, 1, 0]),
                     DISP=np.full(4, 0.9))
    sp = m.to_specutils()
    np.testing.assert_array_equal(sp.mask, [False, False, True, False])
    np.testing.assert_array_equal(sp.meta["NUSED"], m.NUSED)
    np.testing.assert_allclose(sp.spectral_axis.to_value(u.AA), wave)


def test_without_specutils_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "specutils", None)   # import fails
    with pytest.raises(SkyModellingError, match="needs specutils: pip install"):
        _fibre().to_specutils()


@pytest.fixture(scope="module")
def mean_out(noiseless_tree, tmp_path_factory):
    from skymodelling.stages.extract import run_extract
    from skymodelling.stages.mean import run_mean

    out = tmp_path_factory.mktemp("specutils") / "out"
    run_extract(noiseless_tree, out)
    run_mean(out)
    return out


@pytest.mark.slow   # extract and mean of a small tree
def test_open_dataset_spectra_hand_over(mean_out):
    from skymodelling import open_dataset

    ds = open_dataset(mean_out)
    s = ds.spectrum(0)
    sp = s.to_specutils()
    np.testing.assert_array_equal(sp.spectral_axis.value, s.WAVE)
    np.testing.assert_array_equal(sp.mask, ~s.good)
    m = ds.means.spectrum(0)
    assert m.DISP is not None and np.all(m.DISP[m.NUSED > 0] > 0)   # the mean's DISP
    spm = m.to_specutils()
    np.testing.assert_array_equal(spm.uncertainty.array[~spm.mask], m.IVAR[m.good])
    np.testing.assert_array_equal(spm.meta["DISP"], m.DISP)
