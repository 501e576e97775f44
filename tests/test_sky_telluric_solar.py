"""Telluric absorption, O2 bands and the synthetic solar spectrum of the simulator."""
import numpy as np
import pytest

from skymodelling.sky import o2_bands, solar_synth, telluric
from skymodelling.sky.solar import load_solar_table
from skymodelling.sky.units import ab_magnitude, air_to_vacuum, vacuum_to_air


def _head(lo, hi):
    w = np.arange(lo, hi, 0.02)
    t = telluric.telluric_transmission(w, 1.0)
    return float(w[np.flatnonzero(t < 0.5)[0]])


def test_o2_band_heads_where_the_atmosphere_has_them():
    # A-band head 759.37 nm, B-band head 686.7 nm (air; e.g. the Fraunhofer A and B)
    assert _head(7500.0, 7700.0) == pytest.approx(float(air_to_vacuum(7593.7)), abs=1.5)
    assert _head(6800.0, 6950.0) == pytest.approx(float(air_to_vacuum(6867.0)), abs=1.5)


def test_o2_emission_band_is_the_0_1_band_near_8650():
    w, f, names = o2_bands.o2_emission_lines()
    air = vacuum_to_air(w[f > 1e-3 * f.max()])
    assert air.min() > 8590 and air.max() < 8760
    # the band origin (0-0 minus Delta G(X)) lies between the R and P branches
    origin = 1e8 / (13120.9085 - 1556.385)
    r = np.char.find(np.asarray(names, dtype=str), ")R") > 0
    assert np.all(w[r] < origin + 1) and np.all(w[~r] > origin - 1)
    assert f.sum() == pytest.approx(1.0)


def test_transmission_follows_beer_lambert_and_binning_conserves_it():
    fine = telluric._zenith_tau()[0]
    w = fine[(fine > 7550.0) & (fine < 7750.0)]     # on the model's own fine grid
    t1 = telluric.telluric_transmission(w, 1.0)
    t2 = telluric.telluric_transmission(w, 2.0)
    assert t2 == pytest.approx(t1**2, abs=1e-9)
    assert np.all((t1 >= 0) & (t1 <= 1))
    binned = telluric.telluric_transmission(np.array([7650.0]), 1.0, bin_width=100.0)
    assert binned[0] == pytest.approx(t1[(w >= 7600) & (w < 7700)].mean(), abs=2e-3)
    wet = telluric.telluric_transmission(np.array([9450.0]), 1.0, pwv_mm=10.0, bin_width=200)
    dry = telluric.telluric_transmission(np.array([9450.0]), 1.0, pwv_mm=2.0, bin_width=200)
    assert wet[0] < dry[0] < 1.0
    assert telluric.telluric_transmission(np.array([5000.0, 8700.0]), 1.5) == pytest.approx(1.0)


def test_solar_colour_and_broad_shape_match_the_measured_sun():
    w = np.arange(3200.0, 11000.0, 0.5)
    f = solar_synth.synthetic_solar_spectrum(w, bin_width=0.5)
    # solar g - r = 0.44-0.46 AB (e.g. Willmer 2018, ApJS 236, 47: 0.46)
    gr = ab_magnitude(w, f, "sdss2010-g") - ab_magnitude(w, f, "sdss2010-r")
    assert gr == pytest.approx(0.45, abs=0.05)
    tw, tf = load_solar_table()
    for lo in np.arange(4000.0, 10000.0, 500.0):
        sel = (w >= lo) & (w < lo + 500)
        astm = tf[(tw >= lo) & (tw < lo + 500)].mean()
        assert f[sel].mean() == pytest.approx(astm, rel=0.06)


def test_solar_lines_are_resolved_beyond_the_astm_table():
    # the synthetic spectrum is not the decompose template: Ca II K at 0.5 A is much
    # deeper than in the ~1 nm ASTM table
    w = np.arange(3900.0, 4000.0, 0.5)
    f = solar_synth.synthetic_solar_spectrum(w, bin_width=0.5)
    tw, tf = load_solar_table()
    k = float(air_to_vacuum(3933.66))
    assert f[np.argmin(np.abs(w - k))] < 0.5 * np.interp(k, tw, tf)
    # and the strong lines sit where the Sun has them: H alpha is the deepest point nearby
    w = np.arange(6500.0, 6620.0, 0.5)
    f = solar_synth.synthetic_solar_spectrum(w, bin_width=0.5)
    assert w[np.argmin(f)] == pytest.approx(float(air_to_vacuum(6562.81)), abs=0.5)


def test_sky_model_switch_keeps_v_brightness_and_adds_the_bands():
    import dataclasses

    from skymodelling.sky.model import SkyConditions, sky_model
    from skymodelling.sky.units import vega_v_magnitude

    cond = SkyConditions(airmass=1.2, target_alt=56.0, moon_alt=40.0, moon_sep=60.0,
                         moon_phase=40.0, sun_alt=-30.0, ecl_lon_minus_sun=120.0,
                         ecl_lat=30.0, gal_lon=90.0, gal_lat=40.0)
    wave = np.arange(3400.0, 10800.0, 0.5)
    new = sky_model(wave, cond)
    old = sky_model(wave, cond, independent=False)
    assert old.telluric is None and len(old.lines) < 2000 < len(new.lines)
    for key in ("moon", "zodiacal", "starlight"):
        # same V brightness (the V band has no telluric band), different fine structure
        assert vega_v_magnitude(wave, new.continua[key]) == pytest.approx(
            vega_v_magnitude(wave, old.continua[key]), abs=0.02)
    a_band = (wave > 7600) & (wave < 7640)
    assert new.continua["moon"][a_band].sum() < 0.8 * old.continua["moon"][a_band].sum()
    dry = sky_model(wave, dataclasses.replace(cond), pwv_mm=1.0)
    water = (wave > 9300) & (wave < 9700)
    assert dry.continuum()[water].sum() > new.continuum()[water].sum()
