"""The physical night-sky model: one call per exposure, all components on one grid.

:func:`sky_model` combines

* airglow lines (:mod:`.airglow`: OH, O2, [OI], Na D, [NI]) and the airglow
  pseudo-continuum, varied with solar activity, season and time of night, times the
  van Rhijn factor for the line-of-sight enhancement and the atmospheric extinction;
* zodiacal light (:mod:`skymodelling.conditions.zodiacal`) and integrated
  starlight (:mod:`skymodelling.conditions.starlight`), attenuated by extinction;
* scattered moonlight (:mod:`.moon`, KS91; extinction already included);
* twilight (:mod:`.twilight`);
* light pollution: Hg and high-pressure sodium lines and the broad HPS continuum,
  scaled by the airmass (light scattered in the lower atmosphere) and not extinguished.

Variations of the airglow (multiplicative factors, 1 at 100 sfu, mid-season,
mid-night):

* solar activity, ``1 + c (F10.7 - 100) / 100`` with ``c`` = 0.30 for [OI]5577
  (~+40% from 70 to 200 sfu), 0.5 for [OI]6300/6364, 0.3 for [NI], 0.1 for OH, O2
  and Na, 0.2 for the continuum (after e.g. Walker et al. 1988, PASP 100, 496;
  Krisciunas 1997, PASP 109, 1181; Patat 2008, A&A 481, 575: [OI] lines and the
  broad-band sky brighten by ~0.5 mag from solar minimum to maximum);
* season: Na D ``1 + 0.5 cos(2 pi (month - 0.5) / 12)`` (winter maximum at
  mid-northern latitudes, ~3x the summer minimum; e.g. Plane 2003, Chem. Rev. 103,
  4963); [OI]5577 and OH semiannual with equinoctial maxima,
  ``1 + a cos(4 pi (month - 4) / 12)``, ``a`` = 0.2 and 0.1;
* time of night ``t`` (hours since the end of astronomical twilight, clipped at 0):
  [OI]6300/6364 ``0.3 + 1.2 exp(-t / 1.5 h)`` (decay of the F-region recombination
  emission after dusk); OH, O2, [OI]5577, [NI] and the continuum
  ``0.85 + 0.3 exp(-t / 3 h)`` (mild decline through the night);
* the night-to-night multiplier ``night_factor`` supplied by the simulator.

Two line lists and solar spectra (keyword ``independent`` of :func:`sky_model`):

* ``independent=True`` (default; the simulator's sky): the full OH Meinel list of
  :mod:`.oh_meinel` (~8,000 lines, satellite branches, a hot rotational population),
  the O2 (0-1) band from the constants of :mod:`.o2_bands`, telluric O2 A/B and H2O
  absorption (:mod:`.telluric`) on every component, and the synthetic
  high-resolution solar spectrum of :mod:`.solar_synth` in moonlight, zodiacal
  light, starlight and twilight: nothing of it is a template of the decompose stage;
* ``independent=False``: the original sparse model (J <= 10.5 main-branch OH lines,
  ASTM G173 solar spectrum, no telluric bands), kept for comparison.

The van Rhijn (1921) factor for a thin layer at ``h = 90`` km above a site at 2.788 km:
``V(z) = [1 - (R / (R + h))^2 sin^2 z]^-1/2`` with ``R = 6371 + 2.788`` km.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table, vstack

from skymodelling.conditions.starlight import isl_s10, isl_spectrum
from skymodelling.conditions.zodiacal import s10_to_flux, zodi_s10

from .airglow import (
    NIR_CONTINUUM_SCALE,
    O2_BAND_INTENSITY,
    airglow_continuum,
    atomic_lines,
    hps_continuum,
    light_pollution_lines,
    o2_atmospheric_lines,
    oh_lines,
)
from .extinction import extinction_coefficient
from .moon import moon_spectrum
from .twilight import twilight_spectrum
from .units import line_flux_to_rayleigh, rayleigh_per_angstrom_to_flux, rayleigh_to_line_flux

EARTH_RADIUS_KM = 6371.0 + 2.788
AIRGLOW_HEIGHT_KM = 90.0
#: Red limit of the OH lines in the model: beyond 10500 A so that the SDSS z band
#: (which extends to ~11200 A) is complete when the grid reaches that far.
LINE_WAVE_MAX = 11200.0
CONTINUUM_KEYS = ("airglow", "zodiacal", "starlight", "moon", "twilight", "hps")

_SOLAR_COEFF = {"OI": 0.30, "OI6300": 0.5, "NI": 0.3, "OH": 0.1, "O2": 0.1, "NaD": 0.1}
_CONT_SOLAR_COEFF = 0.2
_ARTIFICIAL = ("Hg", "NaHPS")


@dataclass
class SkyConditions:
    """Observing conditions of one exposure (plain floats; angles in degrees).

    Attributes
    ----------
    airmass : float
        Airmass of the target.
    target_alt : float
        Altitude of the target.
    moon_alt, moon_sep, moon_phase : float
        Moon altitude, Moon-target separation and lunar phase angle (0 full, 180 new).
    sun_alt : float
        Solar altitude.
    ecl_lon_minus_sun, ecl_lat : float
        Ecliptic longitude of the target minus that of the Sun, and ecliptic latitude.
    gal_lon, gal_lat : float
        Galactic coordinates of the target.
    solar_flux : float
        10.7 cm solar flux in sfu.
    hours_since_dusk : float
        Hours since the end of astronomical twilight (Sun at -18 deg); negative or
        zero values mean twilight or the very start of the night.
    month : int
        Calendar month, 1-12 (for the seasonal variations).
    night_factor : float
        Night-to-night airglow variability multiplier supplied by the simulator.
    light_pollution : float
        Multiplier of the artificial (Hg, HPS) emission; 1 is a dark site like APO.
    """

    airmass: float
    target_alt: float
    moon_alt: float
    moon_sep: float
    moon_phase: float
    sun_alt: float
    ecl_lon_minus_sun: float
    ecl_lat: float
    gal_lon: float
    gal_lat: float
    solar_flux: float = 100.0
    hours_since_dusk: float = 3.0
    month: int = 3
    night_factor: float = 1.0
    light_pollution: float = 1.0


@dataclass
class SkyComponents:
    """The sky of one exposure, split into components.

    Attributes
    ----------
    wave : numpy.ndarray
        Vacuum wavelength grid (A) of the continua.
    continua : dict of str to numpy.ndarray
        Continuum components in erg s^-1 cm^-2 A^-1 arcsec^-2 as observed at the
        telescope; keys ``CONTINUUM_KEYS``.
    lines : astropy.table.Table
        WAVE (vacuum A), FLUX (erg s^-1 cm^-2 arcsec^-2 at the telescope),
        INTENSITY (R, zenith emission rate under these conditions, before the
        van Rhijn factor and extinction), NAME, SPECIES.
    telluric : numpy.ndarray or None
        Telluric (O2, H2O) transmission on ``wave``, averaged over each grid step,
        already applied to ``continua`` and to the line fluxes (None for the
        original model, which has none).
    """

    wave: np.ndarray
    continua: dict[str, np.ndarray] = field(default_factory=dict)
    lines: Table = field(default_factory=Table)
    telluric: np.ndarray | None = None

    def continuum(self) -> np.ndarray:
        """Sum of all continuum components."""
        return np.sum([self.continua[k] for k in self.continua], axis=0)

    def line_intensity_rayleigh(self, name: str, observed: bool = False) -> float:
        """Intensity in rayleigh of the line ``name`` (NAME), or summed over a SPECIES.

        Parameters
        ----------
        name : str
            A line NAME (e.g. ``'[OI]5577'``) or, if no line has that name, a SPECIES
            (e.g. ``'OH'``).
        observed : bool
            If False, the zenith emission rate (column INTENSITY); if True, the
            surface brightness at the telescope (van Rhijn and extinction included).
        """
        sel = np.asarray(self.lines["NAME"]) == name
        if not sel.any():
            sel = np.asarray(self.lines["SPECIES"]) == name
        if not sel.any():
            raise KeyError(f"no line or species named {name!r}")
        if observed:
            return float(np.sum(line_flux_to_rayleigh(self.lines["FLUX"][sel],
                                                      self.lines["WAVE"][sel])))
        return float(np.sum(self.lines["INTENSITY"][sel]))


def van_rhijn(target_alt_deg, height_km: float = AIRGLOW_HEIGHT_KM) -> np.ndarray:
    """Van Rhijn (1921) enhancement of a thin emitting layer at ``height_km``."""
    z = np.radians(90.0 - np.clip(np.asarray(target_alt_deg, dtype=float), 0.0, 90.0))
    ratio = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + height_km)
    return 1.0 / np.sqrt(1.0 - ratio**2 * np.sin(z) ** 2)


#: Real / simulated brightness, by SPECIES, of lines whose intensities in :mod:`.airglow`
#: are guesses (the artificial Hg and HPS lines) or typical values that real BOSS sky at
#: APO does not follow ([OI] 6300/6364), by which the independent sky model multiplies
#: them: medians over the calibration set of ``benchmarks/bench_ohbands.py`` (the first
#: five spec files of plate 7338, 2014-2015, near solar maximum; held out: Hg 5.0, NaHPS
#: 5.8, OI6300 2.0), measured in the blue camera (Hg 4047-5791, NaHPS 4979-6161; [OI]
#: 6300 in both). The broad HPS continuum is not measured and keeps its level; [OI] 5577
#: (core masked in spec files) and Na D (0.7 calibration, 1.2 held out: seasonal) keep
#: theirs.
LINE_REAL_SCALE = {"Hg": 4.9, "NaHPS": 7.5, "OI6300": 2.2}


@functools.cache
def _base_lines(independent: bool = False):
    if independent:
        from .o2_bands import O2_REAL_SCALE, o2_emission_lines
        from .oh_meinel import oh_meinel_lines

        w, f, n = o2_emission_lines()
        o2 = Table({"WAVE": w, "INTENSITY": O2_BAND_INTENSITY * O2_REAL_SCALE * f,
                    "NAME": np.array(n),
                    "SPECIES": np.full(w.size, "O2")})
        other = vstack([atomic_lines(), light_pollution_lines()])
        other["INTENSITY"] *= [LINE_REAL_SCALE.get(str(sp), 1.0) for sp in other["SPECIES"]]
        t = vstack([oh_meinel_lines(wave_max=LINE_WAVE_MAX), o2, other])
    else:
        t = vstack([oh_lines(wave_max=LINE_WAVE_MAX), o2_atmospheric_lines(), atomic_lines(),
                    light_pollution_lines()])
    wave = np.asarray(t["WAVE"], dtype=float)
    return (wave, np.asarray(t["INTENSITY"], dtype=float), np.asarray(t["NAME"]),
            np.asarray(t["SPECIES"]), rayleigh_to_line_flux(1.0, wave))


def _solar(coeff: float, f107: float) -> float:
    return max(0.3, 1.0 + coeff * (f107 - 100.0) / 100.0)


def airglow_factors(species: np.ndarray, cond: SkyConditions) -> np.ndarray:
    """Multiplicative variation of each line's zenith intensity (see module notes)."""
    t = max(float(cond.hours_since_dusk), 0.0)
    month = float(cond.month)
    semi = np.cos(4.0 * np.pi * (month - 4.0) / 12.0)
    mild = 0.85 + 0.3 * np.exp(-t / 3.0)
    per = {
        "OI": _solar(0.30, cond.solar_flux) * (1.0 + 0.2 * semi) * mild,
        "OI6300": _solar(0.5, cond.solar_flux) * (0.3 + 1.2 * np.exp(-t / 1.5)),
        "NI": _solar(0.3, cond.solar_flux) * mild,
        "OH": _solar(0.1, cond.solar_flux) * (1.0 + 0.1 * semi) * mild,
        "O2": _solar(0.1, cond.solar_flux) * mild,
        "NaD": _solar(0.1, cond.solar_flux) * (1.0 + 0.5 * np.cos(2 * np.pi * (month - 0.5) / 12)),
    }
    out = np.ones(species.size)
    for sp, fac in per.items():
        out[species == sp] = fac * cond.night_factor
    art = np.isin(species, _ARTIFICIAL)
    out[art] = cond.light_pollution
    return out


@functools.cache
def _solar_ratio_cached(lo: float, hi: float, n: int) -> np.ndarray:
    from .solar import solar_spectrum
    from .solar_synth import synthetic_solar_spectrum
    from .units import vega_v_magnitude

    wave = np.linspace(lo, hi, n)
    step = (hi - lo) / max(n - 1, 1)
    synth = synthetic_solar_spectrum(wave, bin_width=step)
    astm = solar_spectrum(wave)
    ratio = synth / astm
    # keep each component's V-band brightness: scale the ratio to the same V flux
    dv = vega_v_magnitude(wave, synth) - vega_v_magnitude(wave, astm)
    out = ratio * 10.0 ** (0.4 * dv)
    out.setflags(write=False)
    return out


def solar_ratio(wave) -> np.ndarray:
    """Synthetic over ASTM solar spectrum on ``wave``, normalised to the same V flux.

    The zodiacal light, starlight, moonlight and twilight components are the ASTM
    spectrum times smooth factors; multiplying them by this ratio replaces the ASTM
    spectrum by the synthetic one of :mod:`.solar_synth` (exactly, on a uniform
    grid with the synthetic spectrum averaged over each grid step).
    """
    wave = np.asarray(wave, dtype=float)
    uniform = wave.size > 2 and np.allclose(np.diff(wave), wave[1] - wave[0])
    if uniform:
        return _solar_ratio_cached(float(wave[0]), float(wave[-1]), int(wave.size))
    # any other grid: the ratio at the points, with the V normalisation of a fine grid
    from .solar import solar_spectrum
    from .solar_synth import synthetic_solar_spectrum

    fine = _solar_ratio_cached(4500.0, 7000.0, 5001)
    raw = (synthetic_solar_spectrum(np.linspace(4500.0, 7000.0, 5001), bin_width=0.5)
           / solar_spectrum(np.linspace(4500.0, 7000.0, 5001)))
    return synthetic_solar_spectrum(wave) / solar_spectrum(wave) * float(fine[0] / raw[0])


def sky_model(wave, cond: SkyConditions, *, independent: bool = True,
              pwv_mm: float = 5.0) -> SkyComponents:
    """Evaluate the night-sky model for one exposure.

    Parameters
    ----------
    wave : array_like
        Vacuum wavelength grid in Angstrom for the continua (e.g. 3500-10500 A);
        a uniform grid is best (the solar and telluric fine structure is then
        averaged over each step, conserving flux).
    cond : SkyConditions
        Observing conditions.
    independent : bool
        True (default): the simulator's realistic sky, independent of the
        decompose stage's templates (full OH line list, O2 band from constants,
        telluric absorption, synthetic solar spectrum); False: the original
        sparse model. See the module notes.
    pwv_mm : float
        Precipitable water vapour at the zenith (mm) for the H2O bands
        (``independent=True`` only).

    Returns
    -------
    SkyComponents
        Continua on ``wave`` and the line list with fluxes at the telescope.

    Examples
    --------
    >>> import numpy as np
    >>> cond = SkyConditions(airmass=1.0, target_alt=90.0, moon_alt=-30.0, moon_sep=90.0,
    ...                      moon_phase=90.0, sun_alt=-30.0, ecl_lon_minus_sun=120.0,
    ...                      ecl_lat=60.0, gal_lon=90.0, gal_lat=60.0)
    >>> sky = sky_model(np.linspace(3500.0, 10500.0, 2000), cond)
    >>> 100 < sky.line_intensity_rayleigh("[OI]5577") < 250
    True
    """
    wave = np.asarray(wave, dtype=float)
    x = float(cond.airmass)
    vr = float(van_rhijn(cond.target_alt))
    k = extinction_coefficient(wave)
    trans = 10.0 ** (-0.4 * k * x)

    t = max(float(cond.hours_since_dusk), 0.0)
    cont_fac = (_solar(_CONT_SOLAR_COEFF, cond.solar_flux) * (0.85 + 0.3 * np.exp(-t / 3.0))
                * cond.night_factor)
    continua = {
        "airglow": rayleigh_per_angstrom_to_flux(
            airglow_continuum(wave, unresolved_oh=NIR_CONTINUUM_SCALE if independent else 1.0)
            * cont_fac * vr,
            wave) * trans,
        "zodiacal": s10_to_flux(zodi_s10(cond.ecl_lon_minus_sun, cond.ecl_lat, fill="nearest"),
                                wave, redden=True) * trans,
        "starlight": isl_spectrum(isl_s10(cond.gal_lon, cond.gal_lat), wave) * trans,
        "moon": moon_spectrum(wave, cond.moon_phase, cond.moon_sep, cond.moon_alt,
                              cond.target_alt, k_v=float(extinction_coefficient(5500.0))),
        "twilight": twilight_spectrum(wave, cond.sun_alt, x),
        "hps": rayleigh_per_angstrom_to_flux(hps_continuum(wave) * cond.light_pollution * x,
                                             wave),
    }

    lwave, lint, names, species, r2f = _base_lines(bool(independent))
    fac = airglow_factors(species, cond)
    intensity = lint * fac
    art = np.isin(species, _ARTIFICIAL)
    geom = np.where(art, x, vr * 10.0 ** (-0.4 * extinction_coefficient(lwave) * x))
    if independent:
        from .telluric import telluric_transmission

        step = float(np.median(np.diff(wave))) if wave.size > 1 else None
        tell = telluric_transmission(wave, x, pwv_mm, bin_width=step)
        sun = solar_ratio(wave)
        for key in continua:
            if key in ("zodiacal", "starlight", "moon", "twilight"):
                continua[key] = continua[key] * sun
            continua[key] = continua[key] * tell
        geom = geom * telluric_transmission(lwave, x, pwv_mm)
    else:
        tell = None
    lines = Table({"WAVE": lwave, "FLUX": intensity * geom * r2f, "INTENSITY": intensity,
                   "NAME": names, "SPECIES": species}, copy=False)
    return SkyComponents(wave=wave, continua=continua, lines=lines, telluric=tell)
