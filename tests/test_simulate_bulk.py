"""The bulk LSF of simulate/bulk.py against the exact per-line rendering."""
import numpy as np
import pytest

from skymodelling.simulate import bulk, instrument


def test_split_keeps_the_brightest_lines_exact():
    w = np.linspace(5000, 6000, 50)
    f = np.arange(50.0)
    exact, faint = bulk.split_lines(w, f, 4000, 7000, n_exact=10)
    assert set(exact) == set(range(40, 50)) and len(faint) == 40
    exact, faint = bulk.split_lines(w, f, 5400, 7000, n_exact=100)
    assert len(faint) == 0 and np.all(w[exact] > 5400)


def test_bulk_lines_match_the_exact_profile_and_conserve_flux():
    # one fibre, a log-lambda pixel grid like BOSS (1e-4 dex), sigma 1.05 pixels
    loglam = 3.85 + 1e-4 * np.arange(400)
    wave = 10**loglam
    pix_width = wave * np.log(10) * 1e-4
    centres = 10 ** (3.85 + 1e-4 * np.array([100.3, 200.0, 300.7]))
    flux = np.array([1.0, 2.0, 0.5])
    x = (np.log10(centres) - 3.85) / 1e-4
    exact = instrument.render_lines(x[None, :], flux, np.full((1, 3), 1.05), 400, 0.0, 1.0)[0]
    exact /= pix_width
    cont, dens = bulk.smooth_on_pixels(wave, wave, np.ones_like(wave), centres, flux, 1.05,
                                       1e-4)
    assert np.sum(dens * pix_width) == pytest.approx(flux.sum(), rel=2e-3)
    assert np.max(np.abs(dens - exact)) < 0.03 * exact.max()
    assert cont[10:-10] == pytest.approx(1.0)
