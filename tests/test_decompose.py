"""Stage decompose: line profile, continuum + lines fit, and the stage on a simulated tree."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skymodelling.cli import main
from skymodelling.config import Config, DecomposeConfig, load_config
from skymodelling.errors import SkyModellingError
from skymodelling.spectral.decompose import NOFIT, decompose_spectrum
from skymodelling.spectral.lsf import line_columns, pixel_profile, profile_derivative
from skymodelling.stages.decompose import EXTNAME, output_path, run_decompose

LSF = (1.1, 0.04, 3.5)
NPIX = 2000
LOGLAM = 3.6 + 1e-4 * np.arange(NPIX)
DLAM = np.diff(10 ** np.concatenate([[LOGLAM[0] - 5e-5], LOGLAM + 5e-5]))


def _continuum():
    x = np.arange(NPIX) / NPIX
    return 4.0 + 1.5 * x - 1.0 * x ** 2 + 0.3 * np.sin(3 * x)


def _lines(centres, fluxes, lsf=LSF):
    cols = line_columns(np.asarray(centres, float), NPIX, DLAM, sigma=lsf[0], eta=lsf[1],
                        gamma=lsf[2], half_width=200)
    return cols @ np.asarray(fluxes, float)


def _noisy(truth, rng, floor=0.05):
    var = floor ** 2 + 0.002 * truth        # photon-like noise
    return truth + rng.normal(0, np.sqrt(var)), 1.0 / var


def test_profile_is_normalised_and_its_derivative_is_right():
    u = np.arange(-2000, 2001) - 0.37
    assert pixel_profile(u, *LSF).sum() == pytest.approx(1.0, abs=2e-4)
    e = 1e-5
    num = (pixel_profile(u[1990:2010] - e, *LSF) - pixel_profile(u[1990:2010] + e, *LSF)) / (
        2 * e)
    assert np.allclose(profile_derivative(u[1990:2010], *LSF), num, atol=1e-8)


def test_continuum_plus_lines_reproduce_a_noisy_spectrum():
    rng = np.random.default_rng(3)
    centres = rng.uniform(60, NPIX - 60, 40) + rng.uniform(-0.5, 0.5, 40)
    fluxes = rng.uniform(5, 400, 40)
    truth_cont = _continuum()
    truth = truth_cont + _lines(centres, fluxes)
    flux, ivar = _noisy(truth, rng)
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF)
    assert d.flag & NOFIT == 0
    assert 0.9 < d.rchi2 < 1.1
    assert np.median(np.abs(d.CONT / truth_cont - 1)) < 0.005
    assert np.allclose(d.CONT + d.LINES, truth, atol=5 / np.sqrt(ivar).min() + 0.02 * truth)


def test_a_width_varying_along_the_camera_is_fitted_and_used():
    # the core width grows by 20 % from the first to the last pixel: the profile search
    # measures it line by line, and a blended pair at the wide end keeps its flux
    from skymodelling.spectral.decompose import line_sigma

    rng = np.random.default_rng(5)
    lsf = (1.1, 0.04, 3.5, 0.1, 0.0)
    centres = np.linspace(80, NPIX - 80, 30) + rng.uniform(-0.5, 0.5, 30)
    pair = np.array([NPIX - 101.0, NPIX - 98.6])
    allc = np.concatenate([centres, pair])
    fluxes = np.concatenate([rng.uniform(200, 2000, 30), [600.0, 300.0]])
    cols = line_columns(allc, NPIX, DLAM, sigma=line_sigma(lsf, allc, NPIX), eta=lsf[1],
                        gamma=lsf[2], half_width=200)
    truth = _continuum() + cols @ fluxes
    flux, ivar = _noisy(truth, rng)
    cfg = DecomposeConfig(wing_blue=(0.04, 3.5))
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", config=cfg)
    assert len(d.lsf) == 5
    assert d.lsf[0] == pytest.approx(1.1, rel=0.03)
    assert d.lsf[3] == pytest.approx(0.1, abs=0.03)
    assert abs(d.lsf[4]) < 0.05
    near = [int(np.argmin(np.abs(d.centre - c))) for c in pair]
    assert d.flux[near].sum() == pytest.approx(900.0, rel=0.02)
    # a constant width misses the pair's flux: the variation matters
    flat = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=d.lsf[:3], config=cfg)
    near = [int(np.argmin(np.abs(flat.centre - c))) for c in pair]
    assert abs(flat.flux[near].sum() / 900.0 - 1) > 0.05


def test_a_supplied_width_curve_gives_the_width_where_there_are_no_bright_lines():
    # bright isolated lines only in the middle third (as in a blue mean spectrum); the
    # instrument's width (DISP) grows by 12 % towards the red end, where a blended pair
    # sits: with the width curve the pair keeps its flux, without it the pair is faint
    from skymodelling.spectral.decompose import disp_width, line_sigma

    rng = np.random.default_rng(8)
    u = np.arange(NPIX)
    curve = 1.0 + 0.12 * np.clip((u - 1000.0) / 900.0, 0, None) ** 2
    disp = 0.95 * curve * 10 ** LOGLAM * np.log(10) * 1e-4     # Angstrom
    width = disp_width(LOGLAM, disp)
    np.testing.assert_allclose(width, 0.95 * curve, rtol=1e-6)
    lsf = (1.1 * np.mean(curve), 0.04, 3.5, 0.0, 0.0)
    centres = np.linspace(700, 1300, 6) + rng.uniform(-0.5, 0.5, 6)
    pair = np.array([1880.0, 1882.3])
    allc = np.concatenate([centres, pair])
    fluxes = np.concatenate([rng.uniform(2000, 4000, 6), [600.0, 300.0]])
    sig = line_sigma(lsf, allc, NPIX, width)
    np.testing.assert_allclose(sig, 1.1 * np.interp(allc, u, curve), rtol=1e-9)
    cols = line_columns(allc, NPIX, DLAM, sigma=sig, eta=lsf[1], gamma=lsf[2], half_width=200)
    flux, ivar = _noisy(_continuum() + cols @ fluxes, rng)
    cfg = DecomposeConfig(wing_blue=(0.04, 3.5))
    # the pair as named lines (a blend: kept at their positions, no width column, as Na D)
    named = Table({"NAME": ["P1", "P2"], "WAVE": 10 ** (LOGLAM[0] + 1e-4 * pair)})
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", config=cfg, width_curve=width,
                           named=named)
    assert d.lsf[0] == pytest.approx(lsf[0], rel=0.01)     # the scale is fitted
    got, err = d.named_flux(["P1", "P2"])
    assert abs(got - 900.0) < 3 * err
    plain = decompose_spectrum(LOGLAM, flux, ivar, arm="b", config=cfg, named=named)
    assert plain.named_flux(["P1", "P2"])[0] / 900.0 - 1 < -0.03


def test_the_width_scale_is_measured_on_several_faint_lines():
    # a single-fibre blue spectrum: no line above S/N 30, six isolated ones near S/N 15;
    # with the DISP width curve only its scale is fitted, and the lines together give it
    from skymodelling.spectral.decompose import LSF_DEFAULT

    rng = np.random.default_rng(21)
    u = np.arange(NPIX)
    width = 1.0 + 0.1 * (u / NPIX)                       # the DISP curve, pixels
    centres = np.linspace(200, 1800, 6) + rng.uniform(-0.5, 0.5, 6)
    scale = 1.25                                         # real lines wider than DISP
    sig = scale * np.interp(centres, u, width)
    cols = line_columns(centres, NPIX, DLAM, sigma=sig, eta=0.04, gamma=2.2, half_width=200)
    flux, ivar = _noisy(_continuum() + cols @ np.full(6, 6.0), rng)
    cfg = DecomposeConfig()
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", config=cfg, width_curve=width)
    snr = d.flux / d.flux_err
    assert snr.max() < 30 and np.sum(snr > 10) >= 4
    assert not d.flag & LSF_DEFAULT
    assert d.lsf[0] == pytest.approx(scale, rel=0.1)
    strict = decompose_spectrum(LOGLAM, flux, ivar, arm="b", width_curve=width,
                                config=DecomposeConfig(lsf_scale_snr=None))
    assert strict.flag & LSF_DEFAULT


def test_fixed_far_wings_give_the_joint_fit():
    # the Lorentzian wing beyond fit_half_width as a fixed term (iterated within each
    # round) gives the fluxes and continuum of fitting the whole profile jointly
    from skymodelling.spectral.lsf import line_wings

    rng = np.random.default_rng(8)
    centres = np.sort(rng.uniform(60, NPIX - 60, 60))
    fluxes = rng.uniform(20, 3000, 60)
    truth = _continuum() + _lines(centres, fluxes)
    flux, ivar = _noisy(truth, rng)
    flux = truth    # noiseless: no marginal noise peak found by one fit and not the other
    # (no sunlight in this spectrum: without the solar template, whose Fraunhofer lines
    # at R = 2000 would otherwise decide whether one marginal blend is split)
    fast = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF,
                              config=DecomposeConfig(fit_half_width=10, solar_template=False))
    joint = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF,
                               config=DecomposeConfig(fit_half_width=40, solar_template=False))
    assert fast.centre.size == joint.centre.size
    kf = [int(np.argmin(np.abs(fast.centre - c))) for c in centres]
    kj = [int(np.argmin(np.abs(joint.centre - c))) for c in centres]
    # (a missing wing would be ~1 % of a line: tens of sigma for the bright ones)
    assert np.max(np.abs(fast.flux[kf] - joint.flux[kj]) / joint.flux_err[kj]) < 0.2
    ratio = fast.flux_err[kf] / joint.flux_err[kj]
    # the wings carry a little information on the split of close blends (a neighbour
    # within 2 pixels: up to ~20 % in the flux error)
    gap = np.array([np.sort(np.abs(fast.centre - fast.centre[k]))[1] for k in kf])
    assert abs(np.median(ratio) - 1) < 0.01 and np.all(np.abs(ratio[gap > 2] - 1) < 0.1)
    assert np.abs(fast.CONT - joint.CONT).max() < 0.2 / np.sqrt(ivar).max()
    assert np.median(np.abs(fast.CONT - joint.CONT)) < 0.01 / np.sqrt(ivar).max()
    # the wing term is the part of the profile the fitted columns leave out
    full = line_columns(centres, NPIX, DLAM, sigma=LSF[0], eta=LSF[1], gamma=LSF[2]) @ fluxes
    core = line_columns(centres, NPIX, DLAM, sigma=LSF[0], eta=LSF[1], gamma=LSF[2],
                        half_width=10) @ fluxes
    wing = line_wings(centres, fluxes, NPIX, DLAM, sigma=LSF[0], eta=LSF[1], gamma=LSF[2],
                      inner=10)
    assert np.allclose(core + wing, full, rtol=1e-12, atol=1e-12)
    assert np.abs(wing).max() > 0.001 * np.abs(full).max()


def test_line_columns_take_one_width_per_line():
    centres = np.array([300.2, 900.7])
    both = line_columns(centres, NPIX, DLAM, sigma=np.array([0.8, 1.3]), eta=0.05, gamma=3.0,
                        derivative=np.ones(2, bool), width_derivative=True).toarray()
    for k, s in enumerate((0.8, 1.3)):
        one = line_columns(centres[k:k + 1], NPIX, DLAM, sigma=s, eta=0.05, gamma=3.0,
                           derivative=np.ones(1, bool), width_derivative=True).toarray()
        assert np.allclose(both[:, [k, 2 + k, 4 + k]], one)


def test_the_solar_template_is_placed_in_the_topocentric_frame():
    from skymodelling.sky.solar import solar_spectrum_kurucz as solar_spectrum
    from skymodelling.spectral.decompose import C_KMS, _continuum_basis

    loglam = np.log10(5800.0) + 1e-4 * np.arange(1000)
    v = 30.0
    basis, nb = _continuum_basis(loglam, 0, 999, DecomposeConfig(), velocity=v)
    tpl = np.asarray(basis[:, -nb:].sum(axis=1)).ravel()   # coarse B-splines sum to 1
    want = solar_spectrum(10 ** loglam * (1 + v / C_KMS))
    ratio = tpl / want
    assert np.allclose(ratio, ratio[0], rtol=1e-9)
    unshifted = solar_spectrum(10 ** loglam)
    assert not np.allclose(tpl / unshifted, (tpl / unshifted)[0], rtol=1e-4)


def test_each_arm_takes_its_configured_solar_spectrum():
    # blue: Kurucz's Sun at R = 2000; red: the ASTM table (solar_kurucz = ("b",))
    from skymodelling.sky.solar import solar_spectrum, solar_spectrum_kurucz
    from skymodelling.spectral.decompose import _continuum_basis

    loglam = np.log10(5800.0) + 1e-4 * np.arange(1000)
    wave = 10 ** loglam
    for arm, cfg, sun in (("b", DecomposeConfig(), solar_spectrum_kurucz),
                          ("r", DecomposeConfig(), solar_spectrum),
                          ("r", DecomposeConfig(solar_kurucz=["b", "r"]), solar_spectrum_kurucz),
                          ("b", DecomposeConfig(solar_kurucz=[]), solar_spectrum)):
        basis, nb = _continuum_basis(loglam, 0, 999, cfg, arm=arm)
        ratio = np.asarray(basis[:, -nb:].sum(axis=1)).ravel() / sun(wave)
        assert np.allclose(ratio, ratio[0], rtol=1e-9)
    with pytest.raises(SkyModellingError, match="solar_kurucz"):
        DecomposeConfig(solar_kurucz=["g"])


def test_the_profile_is_fitted_when_not_given():
    rng = np.random.default_rng(4)
    centres = np.linspace(80, NPIX - 80, 30) + rng.uniform(-0.5, 0.5, 30)
    truth = _continuum() + _lines(centres, rng.uniform(200, 2000, 30))
    flux, ivar = _noisy(truth, rng)
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b")
    assert d.lsf[0] == pytest.approx(LSF[0], rel=0.05)
    assert d.rchi2 < 1.5


def test_the_profile_alone_is_the_profile_of_the_whole_decomposition():
    """fit_profile stops once the profile is fitted: the same as a full decomposition's."""
    from skymodelling.spectral.decompose import fit_profile

    rng = np.random.default_rng(14)
    centres = np.linspace(80, NPIX - 80, 30) + rng.uniform(-0.5, 0.5, 30)
    flux, ivar = _noisy(_continuum() + _lines(centres, rng.uniform(200, 2000, 30)), rng)
    curve = np.linspace(1.0, 1.2, NPIX)
    full = decompose_spectrum(LOGLAM, flux, ivar, arm="r", width_curve=curve)
    lsf, flag = fit_profile(LOGLAM, flux, ivar, arm="r", width_curve=curve)
    assert flag == 0 and not full.flag & 2
    assert lsf == full.lsf
    assert fit_profile(LOGLAM, flux, np.zeros(NPIX), arm="r")[1] == NOFIT


def test_window_fits_are_each_windows_least_squares():
    """The batched window chi-square of the profile fit against numpy.linalg.lstsq per
    window (a straight line, the window's lines and their shift columns)."""
    from skymodelling.spectral.profile import _golden, _WindowFits

    rng = np.random.default_rng(15)
    centres = np.array([300.3, 303.9, 700.7, 1100.2, 1105.5, 1500.1])
    flux = _continuum() + _lines(centres, [500, 80, 300, 900, 200, 400])
    ivar = np.full(NPIX, 400.0)
    ivar[1098] = 0.0
    flux = flux + rng.normal(0, 0.05, NPIX)
    windows = []
    for c in (300.3, 700.7, 1100.2, 1500.1):
        lo, hi = int(c) - 15, int(c) + 16
        windows.append((lo, hi, centres[(centres >= lo) & (centres < hi)], c))
    fits_ = _WindowFits(flux, ivar, DLAM, windows, half_width=25)

    def one(lo, hi, cs, sigma):
        cols = line_columns(cs, NPIX, DLAM, sigma=sigma, eta=LSF[1], gamma=LSF[2],
                            half_width=25, derivative=np.ones(cs.size, bool))
        x = np.arange(hi - lo) / (hi - lo) - 0.5
        a = np.column_stack([np.ones(hi - lo), x, cols[lo:hi].toarray()])
        sw = np.sqrt(ivar[lo:hi])
        coef, *_ = np.linalg.lstsq(a * sw[:, None], flux[lo:hi] * sw, rcond=None)
        return float(np.sum(((flux[lo:hi] - a @ coef) * sw) ** 2))

    sigmas = np.array([0.9, 1.1, 1.3, 1.0])
    want = [one(lo, hi, cs, s) for (lo, hi, cs, _), s in zip(windows, sigmas, strict=True)]
    assert fits_(sigmas, LSF[1], LSF[2]) == pytest.approx(want, rel=1e-9)
    # the joint search finds each window's own minimum (bounded scalar search per window)
    from scipy.optimize import minimize_scalar

    best, _ = _golden(lambda s: fits_(s, LSF[1], LSF[2]), 0.4, 4.0, len(windows), 2e-3)
    for (lo, hi, cs, _), b in zip(windows, best, strict=True):
        ref = minimize_scalar(lambda s, lo=lo, hi=hi, cs=cs: one(lo, hi, cs, s),
                              bounds=(0.4, 4.0), method="bounded", options={"xatol": 1e-5})
        assert abs(b - ref.x) < 3e-3
    assert np.all(np.abs(best - LSF[0]) < 0.05)


def test_golden_section_finds_each_functions_minimum():
    from skymodelling.spectral.profile import _golden

    where = np.array([0.5, 1.7, 3.9, 2.2])
    x, fx = _golden(lambda s: (s - where) ** 2 + where, 0.4, 4.0, where.size, 1e-3)
    assert np.all(np.abs(x - where) < 2e-3)
    assert fx == pytest.approx(where, abs=1e-5)


def test_pure_continuum_gets_no_significant_line():
    rng = np.random.default_rng(5)
    flux, ivar = _noisy(_continuum(), rng)
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="r", lsf=LSF)
    snr = d.flux / d.flux_err
    assert np.sum(snr > 5) <= 1           # a 5 sigma fluctuation is possible but rare
    assert np.abs(d.LINES).max() < 5 * np.sqrt(1 / ivar).max()
    assert 0.9 < d.rchi2 < 1.1


def test_injected_line_is_recovered_within_its_error():
    rng = np.random.default_rng(6)
    pulls = []
    for k in range(20):
        truth = _continuum() + _lines([1000.3 + 0.05 * k], [25.0])
        flux, ivar = _noisy(truth, rng)
        named = Table({"NAME": ["TEST"], "WAVE": [10 ** (LOGLAM[0] + 1e-4 * 1000.3)]})
        d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF, named=named)
        f, e = d.named_flux(["TEST"])
        pulls.append((f - 25.0) / e)
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls) < 4)
    assert 0.5 < np.std(pulls) < 1.6


def _blend(rng, config):
    """Two bright named lines 4.4 pixels apart with an unnamed line half-way (like Na D and
    OH (8-2) in the simulator) and one 2.2 pixels outside: the named fluxes' errors."""
    named = Table({"NAME": ["D2", "D1"],
                   "WAVE": [10 ** (LOGLAM[0] + 1e-4 * u) for u in (1000.2, 1004.6)]})
    boss = (0.72, 0.04, 2.2)                     # the blue BOSS profile on the 1e-4 dex grid
    truth = _continuum() + _lines([997.97, 1000.2, 1002.4, 1004.6], [40.0, 120.0, 20.0, 70.0],
                                  boss)
    flux, ivar = _noisy(truth, rng)
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=boss, named=named, config=config)
    f, e = d.named_flux(["D2", "D1"])
    return f / 190.0 - 1, e / 190.0


def test_named_lines_in_a_blend_keep_their_flux():
    errors = np.array([_blend(np.random.default_rng(20 + k), None) for k in range(5)])
    assert np.all(np.abs(errors[:, 0]) < 4 * errors[:, 1] + 0.005)
    assert np.abs(np.mean(errors[:, 0])) < 0.01   # the neighbours (21 % of the flux) stay out


def _late_blend(rng):
    """A bright named line with a 10 % neighbour 2.3 pixels away (like [OI] 6300 and OH
    (9-3) in the simulator), which the first peak search does not separate."""
    named = Table({"NAME": ["OI"], "WAVE": [10 ** (LOGLAM[0] + 1e-4 * 1000.0)]})
    red = (0.82, 0.05, 3.2)
    truth = _continuum() + _lines([997.7, 1000.0, 1400.3], [60.0, 600.0, 300.0], red)
    flux, ivar = _noisy(truth, rng)
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="r", lsf=red, named=named)
    f, e = d.named_flux(["OI"])
    return d, f / 600.0 - 1, e / 600.0


def test_a_named_line_beside_a_masked_one_is_not_fitted():
    """When a named line's core is masked, a named line blended with it (within
    blend_pixels, like OH6298 beside [OI] 6300) is not fitted either: it would take the
    masked line's flux from its wings. Both are fitted when nothing is masked."""
    named = Table({"NAME": ["OI", "OH", "FAR"],
                   "WAVE": [10 ** (LOGLAM[0] + 1e-4 * u) for u in (1000.0, 998.4, 1400.0)]})
    red = (0.82, 0.05, 3.2)
    truth = _continuum() + _lines([998.4, 1000.0, 1400.0], [30.0, 600.0, 300.0], red)
    flux, ivar = _noisy(truth, np.random.default_rng(31))
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="r", lsf=red, named=named)
    assert all(np.isfinite(d.named_flux([n])[0]) for n in ("OI", "OH", "FAR"))
    ivar[1000] = 0.0                                   # the [OI] core masked
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="r", lsf=red, named=named)
    assert np.isnan(d.named_flux(["OI"])[0]) and np.isnan(d.named_flux(["OH"])[0])
    assert d.named_flux(["FAR"])[0] == pytest.approx(300.0, rel=0.05)


def test_a_named_line_found_blended_later_goes_back_to_its_catalogue_position():
    # the neighbour is found in the residual of the first fit, after the named line's
    # centre was refined towards it: in the blend the named line is at its catalogue
    # position again and keeps only its own flux
    errs = []
    for k in range(4):
        d, err, stat = _late_blend(np.random.default_rng(40 + k))
        assert d.centre[d.name == "OI"][0] == pytest.approx(1000.0, abs=1e-6)
        assert np.any(np.abs(d.centre - 997.7) < 0.7)
        errs.append((err, stat))
    errs = np.array(errs)
    assert np.abs(errs[:, 0].mean()) < 2 * errs[:, 1].mean()


def test_named_lines_are_placed_with_the_heliocentric_velocity():
    v = -30.0                                     # km/s: lines appear at WAVE / (1 + v/c)
    rest = 10 ** (LOGLAM[0] + 1e-4 * 1000.0)
    u = 1000.0 - np.log10(1 + v / 299792.458) / 1e-4
    truth = _continuum() + _lines([u, 1300.3], [3.0, 500.0])
    rng = np.random.default_rng(8)
    flux, ivar = _noisy(truth, rng)
    named = Table({"NAME": ["FAINT"], "WAVE": [rest]})
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF, named=named, velocity=v)
    assert d.centre[d.name == "FAINT"][0] == pytest.approx(u, abs=1e-6)
    f, e = d.named_flux(["FAINT"])
    assert abs(f - 3.0) < 4 * e


def test_masked_spectrum_is_flagged():
    d = decompose_spectrum(LOGLAM, np.ones(NPIX), np.zeros(NPIX), arm="b")
    assert d.flag & NOFIT and d.flux.size == 0


def test_config_validation(tmp_path):
    with pytest.raises(SkyModellingError):
        DecomposeConfig(knot_spacing=2)
    with pytest.raises(SkyModellingError):
        DecomposeConfig(lsf_sigma=1.0)
    with pytest.raises(SkyModellingError):
        DecomposeConfig(min_separation=0.0)
    path = tmp_path / "c.json"
    path.write_text('{"decompose": {"knot_spacing": 60}}')
    assert load_config(path).decompose.knot_spacing == 60


@pytest.fixture(scope="module")
def mean_out(noiseless_tree, tmp_path_factory):
    from skymodelling.stages.extract import run_extract
    from skymodelling.stages.mean import run_mean

    out = tmp_path_factory.mktemp("decompose") / "out"
    run_extract(noiseless_tree, out)
    run_mean(out)
    return out


def test_stage_writes_the_documented_file_and_skips_when_complete(mean_out):
    summary = run_decompose(mean_out)
    assert summary.n_spectra > 0 and summary.n_failures == 0
    path = next((mean_out / "decompose").glob("*/decomp-*.fits"))
    with fits.open(path) as hdul:
        assert hdul[0].header["SMSTAGE"] == "decompose"
        meta = Table.read(hdul[EXTNAME])
        lines = Table.read(hdul["FITLINES"])
        for cam in set(np.asarray(meta["CAMERA"]).astype(str)):
            n = int(np.sum(np.asarray(meta["CAMERA"]).astype(str) == cam))
            for kind in ("CONT", "LINES", "CONT_SMOOTH"):
                assert hdul[f"{cam.upper()}_{kind}"].data.shape[0] == n
    for col in ("PLATE", "MJD", "IMG", "CAMERA", "ROW", "RCHI2", "FLAG", "LSF_SIGMA",
                "OI5577_FLUX", "OI5577_FLUX_ERR", "NAD_FLUX", "NIGHTGLOW_FLUX",
                "NIGHTGLOW_FLUX_ERR"):
        assert col in meta.colnames
    assert len(lines) > 0 and lines["FOUND"].any()
    # blend groups: each group's flux is the sum of its members', in every member's row
    assert str(lines["GROUP_FLUX_ERR"].unit) == str(lines["FLUX"].unit)
    grouped = np.asarray(lines["GROUP"]) > 0
    assert grouped.any() and (~grouped).any()
    key = np.char.add(np.char.add(np.asarray(lines["IMG"]).astype(str),
                                  np.asarray(lines["CAMERA"]).astype(str)),
                      np.asarray(lines["GROUP"]).astype(str))
    _, inv = np.unique(key, return_inverse=True)
    sums = np.bincount(inv, weights=np.asarray(lines["FLUX"]))[inv]
    assert np.allclose(np.asarray(lines["GROUP_FLUX"])[grouped], sums[grouped])
    alone = ~grouped
    assert np.array_equal(np.asarray(lines["GROUP_FLUX"])[alone], np.asarray(lines["FLUX"])[alone])
    b = np.asarray(meta["CAMERA"]).astype(str) == "b1"
    assert np.all(np.asarray(meta["OI5577_FLUX"])[b] > 0)
    plate, mjd = int(meta["PLATE"][0]), int(meta["MJD"][0])
    assert output_path(mean_out, plate, mjd) == path
    again = run_decompose(mean_out)
    assert again.n_skipped == again.n_tasks


@pytest.mark.slow
def test_decompose_uses_the_mean_disp_and_reads_mean_files_without_it(mean_out, tmp_path):
    from skymodelling.stages._common import FailureLog
    from skymodelling.stages.decompose import decompose_file
    from skymodelling.stages.mean import output_path as mean_output

    path = next((mean_out / "mean").glob("*/mean-*.fits"))
    config = Config()
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert "B1_DISP" in names and "R1_DISP" in names
        old = fits.HDUList([h.copy() for h in hdul if not h.name.endswith("_DISP")])
        plate, mjd = hdul[0].header["PLATE"], hdul[0].header["MJD"]
    target = mean_output(tmp_path, plate, mjd)
    target.parent.mkdir(parents=True)
    old.writeto(target)
    new = decompose_file(path, config, FailureLog("decompose", plate, mjd))[0]
    before = decompose_file(target, config, FailureLog("decompose", plate, mjd))[0]
    flat = decompose_file(path, config.replace("decompose", disp_width=False),
                          FailureLog("decompose", plate, mjd))[0]
    assert len(new) == len(before) > 0
    assert np.all(np.isfinite(before["OI5577_FLUX"][np.char.startswith(
        np.asarray(before["CAMERA"]).astype(str), "b")]))
    # without the DISP HDU, or with disp_width off, the old width model is used
    np.testing.assert_allclose(before["LSF_SIGMA"], flat["LSF_SIGMA"])
    np.testing.assert_allclose(before["NAD_FLUX"], flat["NAD_FLUX"], equal_nan=True)
    # with it, the width follows DISP (scale only: no polynomial terms)
    assert np.all(np.asarray(new["LSF_S1"]) == 0) and np.all(np.asarray(new["LSF_S2"]) == 0)
    assert not np.allclose(np.asarray(new["OI6300_FLUX"], float),
                           np.asarray(flat["OI6300_FLUX"], float), rtol=1e-6, equal_nan=True)


def test_command_line(mean_out):
    assert main(["decompose", str(mean_out)]) == 0
    with pytest.raises(SystemExit):
        main(["decompose", str(mean_out), "--spectra", "objects"])


@pytest.mark.slow
def test_fibre_mode_decomposes_every_extract_row_and_skips_when_complete(mean_out):
    from skymodelling import open_dataset
    from skymodelling.spectral.decompose import LSF_DEFAULT, disp_width
    from skymodelling.stages.decompose import FIBRE_EXTNAME, _fibre_disp, fibre_output_path
    from skymodelling.stages.mean import arm_grid

    assert main(["decompose", str(mean_out), "--spectra", "fibres"]) == 0
    ds = open_dataset(mean_out)
    for k, src in enumerate(ds.files):
        meta = ds.meta[np.asarray(ds.meta["FILE"]) == k]
        path = fibre_output_path(mean_out, int(meta["PLATE"][0]), int(meta["MJD"][0]))
        with fits.open(path) as hdul:
            table = Table.read(hdul[FIBRE_EXTNAME])
            for key in ("PLATE", "MJD", "IMG", "CAMERA", "FIB", "ROW"):
                assert np.all(np.asarray(table[key]).astype(str)
                              == np.asarray(meta[key]).astype(str))
            with fits.open(src) as ext:
                for cam in set(np.asarray(meta["CAMERA"]).astype(str)):
                    n = ext[f"{cam.upper()}_FLUX"].data.shape[0]
                    assert hdul[f"{cam.upper()}_CONT"].data.shape[0] == n
                    assert hdul[f"{cam.upper()}_LINES"].data.shape[1] == hdul[
                        f"{cam[0].upper()}_WAVE"].data.size
        ok = (np.asarray(table["FLAG"]) & NOFIT) == 0
        assert ok.mean() > 0.8
        b = ok & (np.char.strip(np.asarray(table["CAMERA"]).astype(str)) == "b1")
        assert b.any() and np.all(np.asarray(table["OI5577_FLUX"])[b] > 0)
        # the profile comes from the means: one per camera, not the default; its width
        # scaled to each fibre's own DISP (the same ratio of sigma to mean DISP for all)
        assert not np.any(np.asarray(table["FLAG"])[b] & LSF_DEFAULT)
        with fits.open(src) as ext:
            rows = np.asarray(table["ROW"])[b]
            loglam = arm_grid("b")
            mean_disp = [np.mean(disp_width(loglam, d)) for d in _fibre_disp(
                ext["B1_WAVE"].data[rows].astype(float),
                ext["B1_DISP"].data[rows].astype(float), loglam)]
        ratio = np.asarray(table["LSF_SIGMA"])[b] / np.array(mean_disp)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)
        assert np.ptp(np.asarray(table["LSF_SIGMA"])[b]) > 0
    assert len(ds.decompositions) == len(ds.meta)
    again = run_decompose(mean_out, spectra="fibres")
    assert again.n_skipped == again.n_tasks


def test_banded_solver_matches_dense_least_squares():
    import scipy.sparse as sp

    from skymodelling.spectral.decompose import _border, _continuum_basis, _Normal

    rng = np.random.default_rng(11)
    centres = np.sort(rng.uniform(20, NPIX - 20, 60))
    cols = line_columns(centres, NPIX, DLAM, sigma=0.8, eta=0.05, gamma=3.2, half_width=40,
                        derivative=np.arange(60) % 3 == 0, width_derivative=True)
    basis, nborder = _continuum_basis(LOGLAM, 0, NPIX - 1, DecomposeConfig())
    assert nborder > 0
    design = sp.hstack([basis, cols]).tocsc()
    w = rng.uniform(0.5, 2.0, NPIX) * (rng.uniform(size=NPIX) > 0.05)
    y = design @ rng.normal(size=design.shape[1]) + rng.normal(size=NPIX) / np.sqrt(
        np.where(w > 0, w, 1))
    system = _Normal(design, y, w, _border(design.shape[1], basis.shape[1], nborder))
    sel = np.delete(np.arange(design.shape[1]), [basis.shape[1] + 5, basis.shape[1] + 17])
    a = design[:, sel].toarray() * np.sqrt(w)[:, None]
    normal = a.T @ a
    want = np.linalg.solve(normal, a.T @ (np.sqrt(w) * y))
    inv = np.linalg.inv(normal)
    lines = basis.shape[1] + np.arange(50)
    coef, var, cov = system.solve(sel, var=lines, cov=lines[[3, 4, 30]])
    assert np.allclose(coef, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    assert np.allclose(var, np.diag(inv)[lines], rtol=1e-4)
    assert np.allclose(cov, inv[np.ix_(lines[[3, 4, 30]], lines[[3, 4, 30]])], rtol=1e-4,
                       atol=1e-7 * np.abs(inv).max())
    assert np.allclose(system.solve(sel)[0], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_stage_needs_mean_output(tmp_path):
    with pytest.raises(SkyModellingError):
        run_decompose(tmp_path, Config())


#: The lines within 30 A of Na D in a moonlit exposure of the simulator (vacuum A, flux per
#: fibre): the (8-2) Q1 lines 2.2 pixels from D1 and D2 are found only in later rounds.
_NAD_REGION = [(5863.18, 3.8), (5863.67, 6.5), (5865.02, 1.8), (5865.29, 1.7), (5866.08, 0.8),
               (5866.64, 7.2), (5867.11, 2.7), (5870.09, 0.6), (5872.44, 2.6), (5887.89, 1.8),
               (5888.61, 17.2), (5891.58, 77.5), (5894.57, 6.8), (5897.56, 47.5), (5903.12, 2.6),
               (5908.29, 3.6), (5914.37, 0.8), (5916.76, 11.3)]


def test_a_faint_line_dropped_before_its_neighbours_were_found_comes_back():
    # under moonlight the faint line 4.1 pixels from D1 comes out negative in the first
    # round (D1 then takes its unfound neighbour with a wider profile) and was dropped for
    # good: the continuum took its flux and Na D came out ~1 % low. It is tried again.
    from skymodelling.sky.solar import solar_spectrum_kurucz as solar_spectrum

    wave, line_flux = np.array(_NAD_REGION).T
    boss = (0.70, 0.04, 2.2)
    sun = solar_spectrum(10 ** LOGLAM)
    truth = 35.0 * sun / np.median(sun) + _lines((np.log10(wave) - LOGLAM[0]) / 1e-4,
                                                 line_flux, boss)
    named = Table({"NAME": ["D2", "D1"], "WAVE": [5891.58, 5897.56]})
    d = decompose_spectrum(LOGLAM, truth, 1700.0 / truth, arm="b", lsf=boss, named=named)
    faint = (np.log10(5903.12) - LOGLAM[0]) / 1e-4
    assert np.any(np.abs(d.centre - faint) < 0.3)
    f, e = d.named_flux(["D2", "D1"])
    assert abs(f / 125.0 - 1) < 0.005 < e / 125.0


def _red_grid(npix=2400):
    loglam = np.log10(8000.0) + 1e-4 * np.arange(npix)
    return loglam, 10 ** loglam * np.log(10) * 1e-4


def test_unresolved_band_is_its_own_component_with_its_flux():
    # a dense band of lines 0.5-1.5 pixel apart (an O2 (0-1)-like band at BOSS resolution)
    # on a smooth continuum: the band goes to LINES and its flux to bands, the continuum
    # under it stays smooth; without the band window it goes into the continuum
    from skymodelling.spectral.lsf import pixel_profile

    loglam, dlam = _red_grid()
    wave = 10 ** loglam
    u = np.arange(loglam.size)
    rng = np.random.default_rng(5)
    cont = 3.0 + 1e-3 * (wave - 8000.0)
    pos = np.sort(rng.uniform(8615.0, 8695.0, 70))
    fl = rng.uniform(2.0, 8.0, pos.size)
    up = (np.log10(pos) - loglam[0]) / 1e-4
    lines = sum(f * pixel_profile(u - c, 0.8, 0.05, 3.2)
                for f, c in zip(fl, up, strict=True)) / dlam
    ivar = np.full(u.size, 1e4)
    lsf = (0.8, 0.05, 3.2)
    d = decompose_spectrum(loglam, cont + lines, ivar, arm="r", lsf=lsf)
    inside = (wave > 8615) & (wave < 8695)
    assert np.median(np.abs(d.CONT[inside] / cont[inside] - 1)) < 0.01
    flux, err = d.bands["O2_0_1"]
    assert abs(flux / fl.sum() - 1) < 0.02 and err > 0
    assert not np.any((d.centre > up.min() - 1) & (d.centre < up.max() + 1))
    off = decompose_spectrum(loglam, cont + lines, ivar, arm="r", lsf=lsf,
                             config=DecomposeConfig(bands=(), nightglow=()))
    assert off.bands == {}
    assert np.median(np.abs(off.CONT[inside] / cont[inside] - 1)) > 0.05


def test_threshold_adapts_to_unmodelled_absorption():
    # narrow absorption dips the continuum basis cannot follow (a solar spectrum sharper
    # than the template) make peaks between them; with the adaptive threshold they are not
    # taken for lines that hold the continuum down, the real lines still are
    from skymodelling.spectral.lsf import pixel_profile

    loglam, dlam = _red_grid(1600)
    u = np.arange(loglam.size)
    rng = np.random.default_rng(2)
    dips = rng.uniform(20, u.size - 20, 160)
    depth = rng.uniform(0.05, 0.25, dips.size)
    trans = np.prod([1 - a * np.exp(-0.5 * ((u - c) / 1.2) ** 2)
                     for a, c in zip(depth, dips, strict=True)], axis=0)
    cont = 50.0 * trans
    real = np.array([300.0, 700.0, 1100.0])
    lines = sum(400.0 * pixel_profile(u - c, 0.8, 0.05, 3.2) for c in real) / dlam
    ivar = np.full(u.size, 1.0)
    lsf = (0.8, 0.05, 3.2)
    cfg = DecomposeConfig(solar_template=False)
    ada = decompose_spectrum(loglam, cont + lines, ivar, arm="r", lsf=lsf, config=cfg)
    fixed = decompose_spectrum(loglam, cont + lines, ivar, arm="r", lsf=lsf,
                               config=DecomposeConfig(solar_template=False,
                                                      systematics_window=0))
    for c in real:
        assert np.min(np.abs(ada.centre - c)) < 1.0
    assert ada.centre.size < fixed.centre.size / 2
    assert abs(np.median(ada.CONT / cont) - 1) < abs(np.median(fixed.CONT / cont) - 1)


def test_blended_lines_are_reported_as_a_group_with_the_error_of_their_sum():
    # a doublet 1.6 pixels apart (an unresolved OH Lambda-doublet) and an isolated line:
    # the doublet's parts trade flux (anti-correlated, large errors) while their sum is
    # well measured; the group error must be the scatter of the sum over noise draws
    centres, fluxes = [700.0, 701.6, 1300.0], [400.0, 300.0, 500.0]
    truth = _continuum() + _lines(centres, fluxes)
    rng = np.random.default_rng(17)
    sums, errs, part_errs = [], [], []
    cfg = DecomposeConfig(solar_template=False)
    for _ in range(40):
        flux, ivar = _noisy(truth, rng)
        d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF, config=cfg)
        near = np.abs(d.centre - 700.8) < 3
        # (two or more lines: however the fit splits the blend, the group holds it)
        assert near.sum() >= 2 and len(set(d.group[near])) == 1 and d.group[near][0] > 0
        assert np.sum(d.group == d.group[near][0]) == near.sum()
        alone = np.abs(d.centre - 1300.0) < 1
        assert d.group[alone] == 0 and d.group_err[alone] == d.flux_err[alone]
        k = np.flatnonzero(near)[0]
        sums.append(d.group_flux()[k])
        errs.append(d.group_err[k])
        part_errs.append(np.sqrt(np.sum(d.flux_err[near] ** 2)))
    sums, errs = np.array(sums), np.array(errs)
    # the sum is right (measured: -0.16 %, the fit splits the doublet into three lines) and
    # its error describes its scatter (measured: 1.31 against 1.30; the parts' errors in
    # quadrature: 9.3)
    assert abs(np.mean(sums) / 700.0 - 1) < 3 * np.std(sums) / 700.0 / np.sqrt(40) + 0.002
    assert np.std(sums) / np.median(errs) == pytest.approx(1.0, abs=0.3)
    # far better measured than the quadrature sum of its parts' errors would say
    assert np.median(errs) < 0.5 * np.median(part_errs)


def _forest(rng, npix=NPIX):
    """A synthetic emission forest: 150 narrow features (sigma 1-4 pixels) of random
    strengths, >= 0, in the template's units (its own scale)."""
    u = np.arange(npix, dtype=float)
    pos = rng.uniform(20, npix - 20, 150)
    width = rng.uniform(1.0, 4.0, pos.size)
    amp = rng.uniform(0.2, 1.0, pos.size)
    return np.sum(amp[:, None] * np.exp(-0.5 * ((u[None] - pos[:, None]) / width[:, None]) ** 2),
                  axis=0)


def test_the_nightglow_template_goes_to_lines_with_the_error_of_its_flux(monkeypatch):
    # a spectrum with a faint emission forest (the template's shape times a slowly varying
    # amplitude) on a smooth continuum with lines: with the template the forest is LINES
    # (GLOW), its flux in bands["NIGHTGLOW"] with an error that describes its scatter over
    # noise draws, and the continuum follows the truth; without it the forest stays in the
    # data - model residual and pulls the continuum up
    from skymodelling.spectral import decompose as dec

    rng = np.random.default_rng(23)
    shape = _forest(rng)
    wave = 10 ** LOGLAM
    monkeypatch.setattr(dec, "nightglow_template",
                        lambda arm, w: np.interp(w, wave, shape) if arm == "b" else None)
    amplitude = 0.4 * (1.0 + 0.3 * np.arange(NPIX) / NPIX)
    forest = amplitude * shape
    truth_flux = float(np.sum(forest * DLAM))
    cont = _continuum()
    truth = cont + forest + _lines([500.0, 1200.0, 1700.0], [300.0, 200.0, 250.0])
    cfg = DecomposeConfig(solar_template=False, nightglow=("b",))
    fluxes, errs = [], []
    for _ in range(25):
        flux, ivar = _noisy(truth, rng)
        d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF, config=cfg)
        assert d.GLOW is not None and d.GLOW.shape == d.LINES.shape
        f, e = d.bands["NIGHTGLOW"]
        fluxes.append(f)
        errs.append(e)
    inner = slice(100, NPIX - 100)
    assert np.median(np.abs(d.CONT[inner] / cont[inner] - 1)) < 0.01
    assert np.median(np.abs(d.GLOW[inner] - forest[inner])) < 0.1 * np.max(forest)
    fluxes = np.array(fluxes)
    assert abs(np.mean(fluxes) / truth_flux - 1) < 0.02
    assert np.std(fluxes) / np.median(errs) == pytest.approx(1.0, abs=0.35)
    # without the template: no GLOW, no NIGHTGLOW flux, the continuum biased up
    off = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF,
                             config=DecomposeConfig(solar_template=False, nightglow=()))
    assert off.GLOW is None and "NIGHTGLOW" not in off.bands
    assert np.median(off.CONT[inner] / cont[inner] - 1) > 0.02    # measured: +2.9 %
    assert off.rchi2 > 1.5 * d.rchi2
    # an arm without a template column fits none
    red = decompose_spectrum(LOGLAM, flux, ivar, arm="r", lsf=LSF,
                             config=DecomposeConfig(solar_template=False, nightglow=("r",)))
    assert red.GLOW is None and "NIGHTGLOW" not in red.bands


def test_the_bundled_nightglow_template_covers_both_arms():
    from skymodelling.spectral.decompose import nightglow_template

    for arm, (lo, hi) in {"b": (3700.0, 6200.0), "r": (6000.0, 10100.0)}.items():
        wave = np.linspace(lo, hi, 5000)
        t = nightglow_template(arm, wave)
        assert t is not None and np.all(t >= 0) and np.mean(t > 0) > 0.3
    # zero outside the table and where the O2 (0-1) band is its own component
    assert nightglow_template("b", np.array([2000.0, 12000.0])).tolist() == [0.0, 0.0]
    assert np.all(nightglow_template("r", np.linspace(8610.0, 8700.0, 50)) == 0.0)


def _native_render(native_loglam, centre, sigma, eta, gamma, grid_loglam):
    """A unit line's flux density on native pixels (the profile integrated over each,
    centred at grid pixel ``centre``; widths in grid pixels), exactly."""
    from scipy.special import ndtr

    from skymodelling.spectral.resample import pixel_edges

    edges = pixel_edges(10.0 ** native_loglam)
    u = (np.log10(edges) - grid_loglam[0]) / 1e-4 - centre
    cdf = (1 - eta) * ndtr(u / sigma) + eta * np.arctan(u / gamma) / np.pi
    return np.diff(cdf) / np.diff(edges)


def test_line_columns_on_native_pixels_are_the_resampled_profile():
    from skymodelling.spectral.lsf import native_sampling
    from skymodelling.spectral.resample import loglam_edges, resample_flux

    native = LOGLAM[0] - 3e-4 + 0.73e-4 * np.arange(int(NPIX / 0.73) + 8)
    grid_edges = loglam_edges(LOGLAM)
    s = native_sampling(10.0 ** native, LOGLAM)
    sigma, eta, gamma, c = 0.8, 0.05, 3.0, 1000.37

    def resampled(c=c, sigma=sigma):
        f = _native_render(native, c, sigma, eta, gamma, LOGLAM)
        return resample_flux(10.0 ** native, f, np.ones_like(f), grid_edges)[0]

    cols = line_columns([c], NPIX, DLAM, sigma=sigma, eta=eta, gamma=gamma, half_width=40,
                        derivative=[True], width_derivative=True, native=s).toarray()
    near = slice(960, 1041)
    truth = resampled()
    np.testing.assert_allclose(cols[near, 0], truth[near], rtol=1e-9, atol=1e-12)
    # the grid's own profile differs by several per cent of the peak here
    plain = line_columns([c], NPIX, DLAM, sigma=sigma, eta=eta, gamma=gamma,
                         half_width=40).toarray()[:, 0]
    assert np.max(np.abs(plain - truth)[near]) > 0.02 * truth.max()
    h = 1e-4
    shift = (resampled(c + h) - resampled(c - h)) / (2 * h)
    width = (resampled(sigma=sigma + h) - resampled(sigma=sigma - h)) / (2 * h)
    np.testing.assert_allclose(cols[near, 1], shift[near], atol=1e-6 * np.abs(shift).max())
    # (only the core depends on sigma: the wing's HWHM is its own)
    np.testing.assert_allclose(cols[near, 2], width[near], atol=1e-6 * np.abs(width).max())


def test_native_pixels_model_a_resampled_spectrum_exactly():
    from skymodelling.spectral.resample import loglam_edges, resample_flux

    rng = np.random.default_rng(11)
    native = LOGLAM[0] - 3e-4 + 0.78e-4 * np.arange(int(NPIX / 0.78) + 8)
    centres = np.arange(80.0, NPIX - 80, 45)
    centres = centres + rng.uniform(-0.5, 0.5, centres.size)
    fluxes = rng.uniform(100, 1000, centres.size)
    sigma, eta, gamma = 0.75, 0.04, 2.2            # the blue arm's wing (DecomposeConfig)
    lines = sum(a * _native_render(native, c, sigma, eta, gamma, LOGLAM)
                for c, a in zip(centres, fluxes, strict=True))
    cont = 3.0 + 0.5 * np.sin(np.arange(native.size) / 400.0)
    truth, _ = resample_flux(10.0 ** native, cont + lines, np.ones(native.size),
                             loglam_edges(LOGLAM))
    good = slice(5, NPIX - 5)
    ivar = np.zeros(NPIX)
    ivar[good] = 1e4 / truth[good]                  # S/N 100 at the continuum
    flux = truth + rng.normal(0, 1, NPIX) / np.sqrt(np.where(ivar > 0, ivar, 1.0))
    out = {}
    for mode, nw in (("grid", None), ("native", 10.0 ** native)):
        d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", native_wave=nw)
        assert d.flag & NOFIT == 0
        k = np.abs(d.centre[:, None] - centres[None, :]).argmin(axis=0)
        out[mode] = (d.rchi2, np.median(np.abs(d.flux[k] / fluxes - 1)), d.lsf[0])
    # the noise dominates the residual only with the native profile
    assert out["native"][0] < 1.3 < out["grid"][0]
    assert out["native"][1] < 0.003 and out["native"][1] < out["grid"][1]
    # the fitted width is the instrument's, without the pixel boxes
    assert out["native"][2] == pytest.approx(sigma, rel=0.02)
    assert out["grid"][2] > 1.03 * sigma


def _faint_forest(rng, n_bright=30, n_faint=150, faint=0.8):
    """Bright lines, a forest of lines below the detection threshold, and their centres."""
    bright = rng.uniform(60, NPIX - 60, n_bright)
    faint_c = rng.uniform(60, NPIX - 60, n_faint)
    centres = np.concatenate([bright, faint_c])
    fluxes = np.concatenate([rng.uniform(100, 1000, n_bright), np.full(n_faint, faint)])
    return centres, fluxes


def test_seeded_faint_lines_are_fitted_and_the_continuum_is_not_biased():
    # a fibre's faint lines (S/N ~3.5 each, below detect_sigma) go into an unseeded
    # continuum; seeded with the lines of a brighter spectrum they are fitted as lines
    rng = np.random.default_rng(11)
    centres, fluxes = _faint_forest(rng)
    cont = _continuum()
    flux, ivar = _noisy(cont + _lines(centres, fluxes), rng)
    free = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF)
    seeded = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF, seeds=centres)
    inner = slice(100, NPIX - 100)
    bias_free = np.median(free.CONT[inner] / cont[inner] - 1)
    bias_seeded = np.median(seeded.CONT[inner] / cont[inner] - 1)
    # the forest's mean flux density is ~1.3 % of the continuum
    forest = np.mean(_lines(centres[30:], fluxes[30:])[inner] / cont[inner])
    assert bias_free > 0.5 * forest > 0.004
    assert abs(bias_seeded) < 0.25 * bias_free
    assert seeded.flux.size >= centres.size
    # the bright lines' fluxes as in the unseeded fit, within their errors
    for c, f in zip(centres[:30], fluxes[:30], strict=True):
        k = np.argmin(np.abs(seeded.centre - c))
        assert abs(seeded.flux[k] - f) < 5 * seeded.flux_err[k] + 0.01 * f


def test_seeded_lines_absent_from_a_spectrum_are_kept_and_measured_as_zero():
    rng = np.random.default_rng(12)
    centres, fluxes = _faint_forest(rng, n_faint=0)
    flux, ivar = _noisy(_continuum() + _lines(centres, fluxes), rng)
    # seeds where this spectrum has nothing (lines of the mean that are not here)
    empty = np.linspace(80, NPIX - 80, 60) + 0.3
    empty = empty[np.min(np.abs(empty[:, None] - centres[None, :]), axis=1) > 8]
    d = decompose_spectrum(LOGLAM, flux, ivar, arm="b", lsf=LSF,
                           seeds=np.concatenate([centres, empty]))
    k = np.argmin(np.abs(d.centre[:, None] - empty[None, :]), axis=0)
    assert np.allclose(d.centre[k], empty)          # none dropped, none moved
    pull = d.flux[k] / d.flux_err[k]
    assert (pull < 0).sum() >= 0.25 * empty.size    # negative amplitudes are kept
    assert abs(np.mean(pull)) < 0.5 and 0.6 < np.std(pull) < 1.5


def test_seeds_are_ignored_when_the_profile_is_fitted():
    rng = np.random.default_rng(13)
    centres, fluxes = _faint_forest(rng, n_faint=20)
    flux, ivar = _noisy(_continuum() + _lines(centres, fluxes), rng)
    a = decompose_spectrum(LOGLAM, flux, ivar, arm="b")
    b = decompose_spectrum(LOGLAM, flux, ivar, arm="b", seeds=centres)
    np.testing.assert_array_equal(a.CONT, b.CONT)
    np.testing.assert_array_equal(a.flux, b.flux)


def test_the_fibres_seeds_are_the_lines_of_their_exposures_mean(mean_out):
    from skymodelling.stages.decompose import _seed_pixels, mean_profiles, mean_seeds
    from skymodelling.stages.mean import arm_grid

    cfg = Config()
    path = next((mean_out / "mean").glob("*/mean-*.fits"))
    profiles = mean_profiles(path, cfg, curves=True)
    seeds = mean_seeds(path, cfg, profiles)
    with fits.open(path) as hdul:
        meta = Table.read(hdul["MEANMETA"])
    keys = {(str(c).strip(), int(i)) for c, i in zip(meta["CAMERA"], meta["IMG"], strict=True)}
    assert set(seeds) == keys and set(profiles) == {c for c, _ in keys}
    cam, img = sorted(keys)[0]
    loglam = arm_grid(cam[0], cfg)
    pix = _seed_pixels(seeds, cam, [img, -1], loglam)
    assert pix[1] is None
    # (the mean has a few dozen lines in a noiseless simulated blue camera, [OI] 5577 one)
    assert pix[0].size > 20 and np.all(np.diff(pix[0]) > 0)
    assert np.min(np.abs(10 ** np.interp(pix[0], np.arange(loglam.size), loglam) - 5578.9)) < 1.5


def test_stack_seeds_fit_the_lines_of_the_rows_stack_in_every_row_moved_by_velocity():
    from skymodelling.spectral.decompose import C_KMS
    from skymodelling.stages.decompose import decompose_block, named_lines

    rng = np.random.default_rng(14)
    # faint lines below the rows' detection threshold, above the stack's
    centres, fluxes = _faint_forest(rng, n_faint=60, faint=1.2)
    dv = 30.0    # km/s between the rows' heliocentric corrections
    shift = -np.log10(1.0 + dv / C_KMS) / 1e-4   # pixels: the second row's lines move by
    flux, ivar = [], []
    for k in range(4):
        c = centres + (shift if k % 2 else 0.0)
        f, iv = _noisy(_continuum() + _lines(c, fluxes), rng)
        flux.append(f)
        ivar.append(iv)
    flux, ivar = np.array(flux), np.array(ivar)
    vel = [0.0, dv, 0.0, dv]
    named = named_lines(None)[:0]
    seeded = decompose_block(LOGLAM, flux, ivar, "b", Config(), named, vel, lsf=LSF)
    alone = decompose_block(LOGLAM, flux, ivar, "b",
                            Config(decompose=DecomposeConfig(stack_seeds=False)), named, vel,
                            lsf=LSF)
    inner = slice(100, NPIX - 100)
    for s_, a_ in zip(seeded, alone, strict=True):
        assert s_.flux.size > a_.flux.size + 20
        # the faint lines are lines, not continuum
        bias = [np.median(d.CONT[inner] / _continuum()[inner] - 1) for d in (s_, a_)]
        assert abs(bias[0]) < 0.6 * bias[1]
    # the faint seeded lines (no shift column) of the second row sit at the first's moved
    # by the difference of their heliocentric corrections
    first, second = seeded[0], seeded[1]
    faint = np.abs(first.flux / first.flux_err) < 15
    k = np.argmin(np.abs(second.centre[:, None] - (first.centre[faint] + shift)[None, :]),
                  axis=0)
    np.testing.assert_allclose(second.centre[k], first.centre[faint] + shift, atol=1e-9)


def test_the_stack_moves_every_row_to_the_frame_of_the_lead():
    from skymodelling.spectral.decompose import C_KMS
    from skymodelling.stages.decompose import stack_rows

    dv = 40.0
    shift = -np.log10(1.0 + dv / C_KMS) / 1e-4      # the second row's lines, in pixels
    rows = np.array([_continuum() + _lines([700.3], [500.0]),
                     _continuum() + _lines([700.3 + shift], [500.0])])
    ivar = np.ones_like(rows)
    ivar[1, 690:695] = 0.0                             # a masked stretch of one row
    flux, iv = stack_rows(LOGLAM, rows, ivar, [0.0, dv], 0.0)
    # (the row's weights move with it: a pixel half on the masked stretch keeps half)
    assert np.all(iv[691:695] == 1.0) and 1.0 < iv[690] < 2.0 and iv[800] == pytest.approx(2.0)
    peak = 700 + np.argmax(flux[700:702])
    # the stacked line stays where the lead row has it (linear interpolation of the other)
    assert peak == 700
    assert flux[695:706].sum() == pytest.approx(rows[0, 695:706].sum(), rel=2e-3)


def test_a_single_row_is_not_stacked():
    from skymodelling.stages.decompose import decompose_block, named_lines

    rng = np.random.default_rng(15)
    centres, fluxes = _faint_forest(rng, n_faint=40, faint=1.2)
    flux, ivar = _noisy(_continuum() + _lines(centres, fluxes), rng)
    named = named_lines(None)[:0]
    one = decompose_block(LOGLAM, flux[None], ivar[None], "b", Config(), named, [0.0], lsf=LSF)
    off = decompose_block(LOGLAM, flux[None], ivar[None], "b",
                          Config(decompose=DecomposeConfig(stack_seeds=False)), named, [0.0],
                          lsf=LSF)
    np.testing.assert_array_equal(one[0].flux, off[0].flux)


def test_real_oi_doublet_ratio_and_the_oh_line_beside_oi6300(realsky_dir):
    """On real BOSS sky, [OI] 6364 / [OI] 6300 is an atomic constant: the photon ratio
    I(6300) / I(6364) measured in the nightglow is 2.997 +- 0.016 (Sharpee & Slanger 2006,
    J. Phys. Chem. A 110, 6707; Storey & Zeippen 2000 give the same), so the flux ratio is
    (1 / 2.997) x 6302.04 / 6365.54 = 0.3303. With the OH (9-3) P2(3) line beside
    [OI] 6300 fitted into it (a feature list without OH6298), the ratio came out 3.5 % low
    on these files; fitted apart, the
    [OI] 6300 flux gives it within 2 %, and the OH line's flux follows the OH band's."""
    from skymodelling.io.specfile import find_specfiles, read_specfile
    from skymodelling.stages.decompose import decompose_block, named_lines, width_curves
    from skymodelling.stages.mean import arm_grid
    from skymodelling.stages.specfiles import exposure_on_grid

    config = Config()
    named = named_lines(config.lines.line_list)
    loglam = arm_grid("r", config)
    wave = 10.0 ** loglam
    oi, oi64, oh, band = [], [], [], []
    for path in find_specfiles(realsky_dir)[:4]:
        spec = read_specfile(path)
        for cam in (c for c in spec.cameras() if c[0] == "r"):
            exps = [e for e in spec.exposures if e.camera == cam]
            grid = [exposure_on_grid(e, loglam) for e in exps]
            flux = np.array([g["FLUX"] for g in grid], dtype=float)
            results = decompose_block(
                loglam, flux, np.array([g["IVAR"] for g in grid], dtype=float), "r", config,
                named, np.array([float(e.header.get("HELIO_RV", 0.0)) for e in exps]),
                curves=width_curves(loglam, np.array([g["DISP"] for g in grid]), config),
                native_waves=[e.wave for e in exps])
            for r in results:
                centre = np.interp(r.centre, np.arange(wave.size), wave)
                oi.append(r.named_flux(["OI6300"])[0])
                oi64.append(r.named_flux(["OI6364"])[0])
                oh.append(r.named_flux(["OH6298"])[0])
                # the other OH lines of 6240-6420 A, mostly of the (9-3) band
                band.append(r.flux[(centre > 6240) & (centre < 6420) & (r.name == "")].sum())
    oi, oi64, oh, band = map(np.asarray, (oi, oi64, oh, band))
    ok = np.isfinite(oi) & np.isfinite(oi64) & np.isfinite(oh)
    assert ok.sum() >= 25
    ratio = np.median(oi64[ok] / oi[ok])
    assert ratio == pytest.approx(0.3303, rel=0.02)
    assert np.corrcoef(oh[ok], band[ok])[0, 1] > 0.6
    assert 0.0 < np.median(oh[ok] / band[ok]) < 0.2


def test_errors_of_a_resampled_spectrum_follow_its_pixels_noise_correlation():
    """A spectrum resampled from native pixels has correlated neighbouring pixels: with the
    resampling's correlation (noise_corr) the lines' errors are the scatter of their fluxes
    over noise draws; without it they are too small."""
    from skymodelling.spectral.resample import loglam_edges, resample_flux

    rng = np.random.default_rng(4)
    nat = 10 ** (3.6 + 0.85e-4 * np.arange(760) + 0.3e-4)        # native pixels
    loglam = 3.6 + 1e-4 * np.arange(640)
    u = (np.log10(nat) - loglam[0]) / 1e-4                       # in grid pixels
    centres = np.array([150.3, 330.6, 470.1])
    truth = 20.0 + sum(400.0 * pixel_profile((u - c) / 0.85, 1.2, 0.0, 3.0) / np.gradient(nat)
                       for c in centres)
    ivar = np.full(nat.size, 1.0 / 20.0)
    pulls, pulls0 = [], []
    for _ in range(150):
        f, iv, corr = resample_flux(nat, truth + rng.standard_normal(nat.size) / np.sqrt(ivar),
                                    ivar, loglam_edges(loglam), correlation=True)
        kw = dict(arm="b", lsf=(1.2, 0.0, 3.0), native_wave=nat, seeds=centres)
        d = decompose_spectrum(loglam, f, iv, noise_corr=corr, **kw)
        d0 = decompose_spectrum(loglam, f, iv, **kw)
        at = [int(np.argmin(np.abs(d.centre - c))) for c in centres]
        np.testing.assert_allclose(d.flux[at], d0.flux[at])       # the same fit
        pulls.append((d.flux[at] - 400.0) / d.flux_err[at])
        pulls0.append((d.flux[at] - 400.0) / d0.flux_err[at])
    assert np.std(pulls) == pytest.approx(1.0, abs=0.1)
    assert np.std(pulls0) > 1.06


def test_errors_of_noisy_real_sky_fibres_match_their_scatter(realsky_dir):
    """Real BOSS sky plus the noise of its IVAR on the native pixels, resampled and
    decomposed as the stage does a sky fibre (the noise-free sky's profile and lines as
    seeds): the named lines' pulls against the noise-free decomposition have unit scatter
    with the resampling's pixel correlation, a larger one without it."""
    from skymodelling.io.specfile import SpecExposure, find_specfiles, read_specfile
    from skymodelling.stages.decompose import decompose_block, named_lines, width_curves
    from skymodelling.stages.mean import arm_grid
    from skymodelling.stages.specfiles import exposure_on_grid

    config = Config()
    named = named_lines(config.lines.line_list)
    rng = np.random.default_rng(12)
    pulls, pulls0 = [], []
    for path in find_specfiles(realsky_dir)[:3]:
        spec = read_specfile(path)
        for cam in spec.cameras():
            arm = cam[0]
            loglam = arm_grid(arm, config)
            exps = [e for e in spec.exposures if e.camera == cam]
            grid = [exposure_on_grid(e, loglam) for e in exps]
            results = decompose_block(
                loglam, np.array([g["FLUX"] for g in grid], dtype=float),
                np.array([g["IVAR"] for g in grid], dtype=float), arm, config, named, None,
                curves=width_curves(loglam, np.array([g["DISP"] for g in grid]), config),
                native_waves=[e.wave for e in exps])
            sel = named[np.asarray(named["CAMERA"]).astype(str) == arm]
            for e, res, g0 in zip(exps, results, grid, strict=True):
                ref = {n: f for n, f, fe in zip(res.name, res.flux, res.flux_err, strict=True)
                       if n and fe > 0 and f > 5 * fe}
                sigma = np.where(e.ivar > 0, 1.0 / np.sqrt(np.where(e.ivar > 0, e.ivar, 1.0)),
                                 0.0)
                noisy = SpecExposure(e.extname, e.camera, e.expid, e.header, e.loglam,
                                     e.sky + sigma * rng.standard_normal(e.sky.size), e.ivar,
                                     e.mask, e.wdisp, e.calib)
                g = exposure_on_grid(noisy, loglam)
                kw = dict(arm=arm, named=sel, lsf=res.lsf, native_wave=e.wave,
                          seeds=res.centre,
                          width_curve=width_curves(loglam, g0["DISP"][None], config)[0])
                d = decompose_spectrum(loglam, g["FLUX"], g["IVAR"], noise_corr=g["CORR"], **kw)
                d0 = decompose_spectrum(loglam, g["FLUX"], g["IVAR"], **kw)
                for n, f, fe, fe0 in zip(d.name, d.flux, d.flux_err, d0.flux_err, strict=True):
                    if n in ref and fe > 0:
                        pulls.append((f - ref[n]) / fe)
                        pulls0.append((f - ref[n]) / fe0)
    assert len(pulls) > 150
    assert np.std(pulls) == pytest.approx(1.0, abs=0.15)
    assert np.std(pulls0) > 1.05 * np.std(pulls)
