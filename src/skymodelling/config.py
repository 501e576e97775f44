"""Configuration of the pipeline stages: typed, validated, recorded in every output.

Defaults reproduce the original SkyModelling analysis where it was right and
fix it where the data-model notes show it was not (see docs/extract.md).
A user file (JSON) can override any field; command-line flags override both.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SkyModellingError

#: Pixels flagged with any of these SPPIXMASK bits are masked (never BRIGHTSKY:
#: it fires on every sky line).
DEFAULT_MASK_BITS = ("NOPLUG", "BADTRACE", "BADFLAT", "BADSKYFIBER", "NOSKY", "FULLREJECT",
                     "COMBINEREJ")


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of ``skymodelling extract``.

    Attributes
    ----------
    calibration : {"fixed", "exposure"}
        ``fixed``: one reference calibration per camera from a good-seeing
        exposure, interpolated in wavelength and rescaled by exposure time
        (the original's choice: per-exposure calibrations fold in point-source
        fibre losses that do not apply to the diffuse sky). ``exposure``: each
        exposure's own spFluxcalib.
    reference_plate, reference_expid : int
        The reference exposure (default: plate 3985, exposure 114439, as the
        original's util/make_calib_file.py).
    diffuse_correction : float
        Factor f for the light a diffuse source loses compared with the
        good-seeing reference (original: 1.027356). Applied with ``fixed``.
    remove_reference_extinction : bool
        Divide the reference calibration by the atmospheric transmission at the
        reference exposure's airmass, so that fluxes are the sky as it reaches
        the telescope rather than scaled by the reference's extinction.
    telluric_from_exposure : bool
        With ``fixed``: take the telluric bands of each exposure's own spFluxcalib
        (:data:`~skymodelling.stages.extract.TELLURIC_WINDOWS`) instead of the
        reference's. The BOSS calibration vectors carry the O2 and H2O bands at the
        standard stars' airmass and water vapour, so a fixed reference corrects the
        bands of its own night and leaves the difference in every other exposure;
        this needs the exposures' spFluxcalib files (fetch then downloads them).
    mask_bits : tuple of str
        SPPIXMASK bits that mask a pixel.
    blue_range, red_range : tuple of float
        Kept vacuum wavelength range in A (pixels outside are flagged).
    """

    calibration: str = "fixed"
    reference_plate: int = 3985
    reference_expid: int = 114439
    diffuse_correction: float = 1.027356
    remove_reference_extinction: bool = True
    telluric_from_exposure: bool = True
    mask_bits: tuple[str, ...] = DEFAULT_MASK_BITS
    blue_range: tuple[float, float] = (3650.0, 6350.0)
    red_range: tuple[float, float] = (5650.0, 10400.0)

    def __post_init__(self):
        from .io import sppixmask

        if self.calibration not in ("fixed", "exposure"):
            raise SkyModellingError(
                f"calibration must be 'fixed' or 'exposure', not {self.calibration!r}")
        if not self.diffuse_correction > 0:
            raise SkyModellingError("diffuse_correction must be positive")
        if "BRIGHTSKY" in self.mask_bits:
            raise SkyModellingError("BRIGHTSKY fires on every sky line: do not mask it")
        try:
            sppixmask.bitmask(self.mask_bits)
        except ValueError as exc:
            raise SkyModellingError(f"mask_bits: {exc}") from exc
        for name in ("blue_range", "red_range"):
            lo, hi = getattr(self, name)
            if not 3000 < lo < hi < 11000:
                raise SkyModellingError(f"{name} must be increasing within 3000-11000 A")
        object.__setattr__(self, "mask_bits", tuple(self.mask_bits))
        object.__setattr__(self, "blue_range", tuple(float(v) for v in self.blue_range))
        object.__setattr__(self, "red_range", tuple(float(v) for v in self.red_range))

    @property
    def reads_exposure_calibration(self) -> bool:
        """Whether extract reads every exposure's spFluxcalib."""
        return self.calibration == "exposure" or self.telluric_from_exposure

    def wave_range(self, camera: str) -> tuple[float, float]:
        """The kept wavelength range of ``camera``."""
        return self.blue_range if camera[0] == "b" else self.red_range


@dataclass(frozen=True)
class EnrichConfig:
    """Settings of ``skymodelling enrich``.

    Attributes
    ----------
    pointing : {"fiber", "boresight"}
        Direction whose conditions are computed: each sky fibre's hole
        (``FIBER_RA``/``FIBER_DEC``, default: the fibres of a plate spread over
        3 deg, so the Moon separation and zodiacal light differ between them)
        or the telescope boresight (``RA``/``DEC``, as the original).
    zodi_fill : {"nearest", "nan"}
        ZODI where Leinert Table 17 is blank (within ~15-20 deg of the Sun):
        the nearest tabulated value (a lower limit) or NaN.
    """

    pointing: str = "fiber"
    zodi_fill: str = "nearest"

    def __post_init__(self):
        if self.pointing not in ("fiber", "boresight"):
            raise SkyModellingError(
                f"pointing must be 'fiber' or 'boresight', not {self.pointing!r}")
        if self.zodi_fill not in ("nearest", "nan"):
            raise SkyModellingError(
                f"zodi_fill must be 'nearest' or 'nan', not {self.zodi_fill!r}")


@dataclass(frozen=True)
class LinesConfig:
    """Settings of ``skymodelling lines``.

    Attributes
    ----------
    line_list : str or None
        Feature list file (CSV like the bundled ``data/sky_features.csv``:
        NAME, KIND, CAMERA, WAVE in vacuum A, HALF_WIDTH, SIDE_INNER, SIDE_OUTER);
        None for the bundled list.
    fiber_area_arcsec2 : float
        Solid angle of a fibre for surface brightness (BOSS 2" fibres: pi).
    min_coverage : float
        Fraction of a band's response the good pixels must cover for a magnitude.
    """

    line_list: str | None = None
    fiber_area_arcsec2: float = 3.141592653589793
    min_coverage: float = 0.99

    def __post_init__(self):
        if not self.fiber_area_arcsec2 > 0:
            raise SkyModellingError("fiber_area_arcsec2 must be positive")
        if not 0 < self.min_coverage <= 1:
            raise SkyModellingError("min_coverage must be in (0, 1]")
        if self.line_list is not None:
            object.__setattr__(self, "line_list", str(Path(self.line_list).resolve()))


@dataclass(frozen=True)
class MeanConfig:
    """Settings of ``skymodelling mean``.

    Attributes
    ----------
    min_fibers : int
        Fewest good sky fibres an exposure and camera needs for a mean; also
        the NUSED below which a pixel is flagged FEWFIBERS.
    clip_sigma : float
        Pixels further than this many sigma from the mean across fibres are
        rejected (sigma: the larger of the pixel's error and 1.4826 x MAD
        across fibres).
    clip_iterations : int
        Rounds of sigma clipping (the first about the median).
    fiber_clip : float
        A fibre whose median normalised residual departs from the other
        fibres' by more than this many robust sigmas is rejected whole.
    weighting : {"fiber", "ivar"}
        ``fiber``: each fibre's weight is one number, its typical inverse
        variance relative to the median across fibres (unbiased when the
        inverse variances are estimated from the noisy counts); ``ivar``: each
        pixel's own inverse variance (biased low in the Poisson regime).
    """

    min_fibers: int = 10
    clip_sigma: float = 4.0
    clip_iterations: int = 3
    fiber_clip: float = 5.0
    weighting: str = "fiber"

    def __post_init__(self):
        if int(self.min_fibers) < 1:
            raise SkyModellingError("min_fibers must be at least 1")
        if not self.clip_sigma > 0 or not self.fiber_clip > 0:
            raise SkyModellingError("clip_sigma and fiber_clip must be positive")
        if int(self.clip_iterations) < 0:
            raise SkyModellingError("clip_iterations must be 0 or more")
        if self.weighting not in ("fiber", "ivar"):
            raise SkyModellingError(
                f"weighting must be 'fiber' or 'ivar', not {self.weighting!r}")
        object.__setattr__(self, "min_fibers", int(self.min_fibers))
        object.__setattr__(self, "clip_iterations", int(self.clip_iterations))


@dataclass(frozen=True)
class MergeConfig:
    """Settings of ``skymodelling merge``.

    Attributes
    ----------
    exclude_plates : tuple of int
        Plates left out of the ``good`` catalogue (besides those the platelist
        marks bad), e.g. special programmes or plates known to be compromised.
    """

    exclude_plates: tuple[int, ...] = ()

    def __post_init__(self):
        try:
            plates = tuple(sorted({int(p) for p in self.exclude_plates}))
        except (TypeError, ValueError) as exc:
            raise SkyModellingError(f"exclude_plates must be plate numbers ({exc})") from exc
        object.__setattr__(self, "exclude_plates", plates)


@dataclass(frozen=True)
class DecomposeConfig:
    """Settings of ``skymodelling decompose`` (docs/decompose.md).

    Attributes
    ----------
    knot_spacing : int
        Pixels (1e-4 dex) between the knots of the cubic B-spline continuum.
    detect_sigma : float
        Matched-filter S/N above which a peak of the data (or of a fit's
        residual) becomes a line.
    systematics_window : int
        Pixels of the running window in which the threshold adapts to the model's
        systematic residuals: the negative excursions of the matched-filter S/N (which no
        emission line makes) give a local scale, and a peak must exceed ``detect_sigma``
        times that scale where it is above 1 (template mismatch, e.g. Fraunhofer lines of a
        moonlit sky, makes peaks and troughs alike). 0: a fixed threshold.
    adaptive_clip : tuple of str
        Arms (``"b"``, ``"r"``) in which the first continuum (a spline fit from which pixels
        far above it are clipped before lines are searched) clips with the adaptive
        threshold too (2.5 times the local scale of the negative excursions): default the
        blue, whose moonlit and zodiacal continuum carries Fraunhofer lines sharper than the
        solar template, so that a fixed clip puts the first continuum at the troughs and
        makes lines of every peak between them. In the red, among the dense OH lines, the
        troughs are the spline overshooting between lines, and the adaptive clip would
        leave faint lines in the continuum (measured, docs/decompose.md).
    iterations : int
        Rounds of adding residual peaks and refining bright lines' centres (3 since
        2026-12-07: on real BOSS sky the third round lowers the red RCHI2 2.16 -> 2.02 and
        the residual at 975-1000 nm 10.1 -> 8.1 %, where undetected faint OH lines pulled the
        continuum up; ~10 % more time; benchmarks/RESULTS.md, "decompose targets").
    max_lines : int
        Most lines per spectrum (the faintest unnamed ones are dropped).
    half_width : int
        Pixels either side of a line where its profile is modelled.
    fit_half_width : int
        Pixels either side of a line's centre fitted jointly with the continuum and the
        other lines; the profile beyond (to ``half_width``: the Lorentzian wing, ~1 % of a
        line) is a fixed term from the previous solution (the final fit solves twice).
        ``fit_half_width >= half_width`` fits the whole profile jointly (slower).
    shift_sigma : float
        Lines above this S/N get their centre refined from the data.
    match_pixels : float
        A named line takes the found peak within this many pixels (and keeps its
        catalogue position, shifted to the grid frame by the heliocentric velocity).
    min_separation : float
        Pixels a new peak must be from every line already in the model.
    blend_pixels : float
        Lines with another line closer than this (pixels) are "blended": they get no
        width column, and named ones keep their catalogue position (no shift column).
    lsf_lines : int
        Brightest isolated lines used to fit the profile.
    lsf_snr : float
        Minimum S/N of a line used to measure the profile width.
    lsf_scale_snr : float or None
        With ``disp_width`` (only the scale of the DISP width curve fitted): lines from
        this S/N are used, if together (quadrature sum) they reach ``lsf_snr``; None
        keeps ``lsf_snr`` per line.
    lsf_sigma, lsf_eta, lsf_gamma : float or None
        A fixed profile (Gaussian sigma and Lorentzian HWHM in pixels, wing
        fraction); None (default) fits it per spectrum.
    fit_wing : bool
        Fit the Lorentzian wing (eta, gamma) on a grid too; default False: the
        instrument's scattering wing ``wing_blue`` / ``wing_red`` is used and only
        the core width is fitted (a fitted wing absorbs faint unresolved lines).
    wing_blue, wing_red : tuple of float
        (eta, gamma in grid pixels) of the scattering wing: BOSS 4 % with HWHM 3.5
        native pixels (blue), 5 % with 4.5 (red), converted with native pixels of 0.63
        (blue) and 0.70 (red) grid pixels (the simulator's scale until 2026-12-07; the real
        pixels are 0.8-1.2 and 0.6-1.0 grid pixels: docs/decompose.md).
    solar_template : bool
        Add to the continuum basis the solar spectrum times a coarse spline (knots every
        ``template_knot_spacing`` pixels): moonlight and zodiacal light are reflected
        sunlight, whose Fraunhofer lines a smooth spline cannot follow.
    solar_kurucz : tuple of {"b", "r"}
        Arms whose solar template is Kurucz's computed solar flux at R = 2000, about the
        BOSS resolution (bundled, ``sky.solar.solar_spectrum_kurucz``); the other arms use
        the ASTM G173-03 table at ~1 nm resolution, in which the Fraunhofer lines are
        smoothed away. Default the blue arm only: measured on real BOSS sky, Kurucz's Sun
        lowers the blue residual and raises the red one (docs/decompose.md).
    bands : tuple of (name, lo, hi)
        Emission bands whose lines are too dense to resolve at BOSS resolution (topocentric
        vacuum Angstrom; default the O2 atmospheric (0-1) band, 8605-8705 A): within
        each window the band is its own airglow component, a cubic B-spline with knots every
        ``band_knot_pixels`` pixels that vanishes at the window's ends; the continuum spline
        has no knot inside the window (its shape there comes from both sides) and no
        unnamed line is searched for there. The band's flux is reported as a group.
    band_knot_pixels : int
        Knot spacing of the band components (pixels).
    nightglow : tuple of {"b", "r"}
        Arms that fit the bundled nightglow template (``data/nightglow_forest.csv``, the
        faint emission forest of real BOSS sky: O2 Herzberg / Chamberlain bands in the blue,
        unresolved faint OH in the red; made by benchmarks/bench_nightglow.py) times a linear
        amplitude, as an airglow component of LINES with its flux ``NIGHTGLOW_FLUX``. On
        real sky, nights not used for the template: |data - model| / data 6.4 -> 2.9-3.4 %
        (blue), 6.8-7.0 -> 4.3-4.9 % (red) (docs/decompose.md). () fits none.
    nightglow_knot_spacing : int
        Pixels between the knots of the template's linear amplitude (about; at least one
        interval per camera).
    smooth_pixels : int
        Width of the running median giving CONT_SMOOTH.
    disp_width : bool
        When the mean output has the mean extraction dispersion (``<CAM>_DISP``), the core
        width along the camera follows its shape and only its scale is fitted on the bright
        isolated lines; False (or an older mean output): the width is a polynomial fitted
        to those lines alone.
    native_pixels : bool
        A single-fibre spectrum (``--spectra fibres``) is resampled onto the grid from its
        native pixels, and its lines are modelled as that resampling made them: the profile
        integrated over the native pixels and spread onto the grid
        (:func:`skymodelling.spectral.lsf.native_sampling`; docs/decompose.md, "Native
        pixels"). False: integrated over the grid pixels, as for a mean spectrum.
    fibre_seeds : bool
        ``--spectra fibres``: each fibre's line search starts from the lines found in the
        mean spectrum of its exposure and camera (decomposed with the mean's profile; the
        ``seeds`` of :func:`skymodelling.spectral.decompose.decompose_spectrum`,
        docs/decompose.md "Fibres"), which are all fitted, also the ones too faint to be
        detected in a fibre. False: each fibre searches its own lines, as a mean does.
    seed_iterations : int
        Rounds of line search after the first fit of the seeded lines (``iterations`` is
        that of an unseeded spectrum).
    stack_seeds : bool
        The spectra of one camera and file that share a profile (the means of a plate's
        exposures, the exposures of a spec file; not fibres seeded from their mean): their
        stack (inverse-variance weighted, in the topocentric frame) is decomposed with the
        detection threshold ``stack_detect_sigma``, and its lines seed every spectrum
        (``seeds``; docs/decompose.md "Seeds"). False: each searches its own lines.
    stack_detect_sigma : float
        Detection threshold (sigma) of the stack's line search.
    """

    knot_spacing: int = 40
    detect_sigma: float = 5.0
    systematics_window: int = 81
    adaptive_clip: tuple = ("b",)
    iterations: int = 3
    max_lines: int = 600
    half_width: int = 40
    fit_half_width: int = 12
    shift_sigma: float = 20.0
    match_pixels: float = 2.0
    min_separation: float = 1.5
    blend_pixels: float = 3.0
    lsf_lines: int = 10
    lsf_snr: float = 30.0
    lsf_scale_snr: float | None = 10.0
    lsf_sigma: float | None = None
    lsf_eta: float | None = None
    lsf_gamma: float | None = None
    smooth_pixels: int = 31
    bands: tuple = (("O2_0_1", 8605.0, 8705.0),)
    band_knot_pixels: int = 2
    fit_wing: bool = False
    wing_blue: tuple[float, float] = (0.04, 2.2)
    wing_red: tuple[float, float] = (0.05, 3.2)
    solar_template: bool = True
    solar_kurucz: tuple = ("b",)
    template_knot_spacing: int = 200
    nightglow: tuple = ("b", "r")
    nightglow_knot_spacing: int = 2000
    disp_width: bool = True
    native_pixels: bool = True
    fibre_seeds: bool = True
    seed_iterations: int = 1
    stack_seeds: bool = True
    stack_detect_sigma: float = 3.0

    def __post_init__(self):
        for name in ("wing_blue", "wing_red"):
            eta, gamma = (float(v) for v in getattr(self, name))
            if not (0 <= eta < 1 and gamma > 0):
                raise SkyModellingError(f"{name} must be (eta in [0, 1), gamma > 0)")
            object.__setattr__(self, name, (eta, gamma))
        for name in ("knot_spacing", "iterations", "max_lines", "half_width", "fit_half_width",
                     "lsf_lines",
                     "smooth_pixels", "template_knot_spacing", "systematics_window",
                     "band_knot_pixels", "nightglow_knot_spacing", "seed_iterations"):
            object.__setattr__(self, name, int(getattr(self, name)))
        try:   # JSON gives lists: [["O2_0_1", 8605, 8705]]
            bands = tuple((str(n), float(lo), float(hi)) for n, lo, hi in self.bands)
        except (TypeError, ValueError):
            raise SkyModellingError("bands must be a list of [name, lo, hi] (Angstrom)") from None
        if any(not lo < hi for _, lo, hi in bands) or self.band_knot_pixels < 1:
            raise SkyModellingError("bands need lo < hi and band_knot_pixels >= 1")
        object.__setattr__(self, "bands", bands)
        clip = tuple(str(a) for a in self.adaptive_clip)
        if not set(clip) <= {"b", "r"}:
            raise SkyModellingError('adaptive_clip lists arms: "b", "r" or both')
        object.__setattr__(self, "adaptive_clip", clip)
        if self.knot_spacing < 4:
            raise SkyModellingError("knot_spacing must be at least 4 pixels")
        kurucz = tuple(str(a) for a in self.solar_kurucz)
        if not set(kurucz) <= {"b", "r"}:
            raise SkyModellingError('solar_kurucz lists arms: "b", "r" or both')
        object.__setattr__(self, "solar_kurucz", kurucz)
        glow = tuple(str(a) for a in self.nightglow)
        if not set(glow) <= {"b", "r"}:
            raise SkyModellingError('nightglow lists arms: "b", "r" or both')
        object.__setattr__(self, "nightglow", glow)
        if not self.detect_sigma > 0 or not self.shift_sigma > 0 or not self.stack_detect_sigma > 0:
            raise SkyModellingError("detect_sigma, stack_detect_sigma and shift_sigma must be "
                                    "positive")
        if self.iterations < 0 or self.max_lines < 1 or self.half_width < 5:
            raise SkyModellingError("iterations >= 0, max_lines >= 1, half_width >= 5 needed")
        if self.seed_iterations < 0:
            raise SkyModellingError("seed_iterations must be 0 or more")
        if self.fit_half_width < 5:
            raise SkyModellingError("fit_half_width >= 5 needed")
        fixed = (self.lsf_sigma, self.lsf_eta, self.lsf_gamma)
        if any(v is not None for v in fixed):
            if any(v is None for v in fixed):
                raise SkyModellingError("give all of lsf_sigma, lsf_eta, lsf_gamma or none")
            if not (self.lsf_sigma > 0 and 0 <= self.lsf_eta < 1 and self.lsf_gamma > 0):
                raise SkyModellingError("lsf_sigma > 0, 0 <= lsf_eta < 1, lsf_gamma > 0 needed")
        if self.smooth_pixels < 1:
            raise SkyModellingError("smooth_pixels must be positive")
        if not (self.min_separation > 0 and self.blend_pixels >= 0):
            raise SkyModellingError("min_separation > 0 and blend_pixels >= 0 needed")


@dataclass(frozen=True)
class Config:
    """All stage settings."""

    extract: ExtractConfig = field(default_factory=ExtractConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    lines: LinesConfig = field(default_factory=LinesConfig)
    mean: MeanConfig = field(default_factory=MeanConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    decompose: DecomposeConfig = field(default_factory=DecomposeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self, stage: str) -> str:
        """Short hash of one stage's settings (outputs made with others are redone)."""
        text = json.dumps(dataclasses.asdict(getattr(self, stage)), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, stage: str, **changes) -> Config:
        """A copy with some fields of one stage changed (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        return dataclasses.replace(self, **{stage: dataclasses.replace(getattr(self, stage),
                                                                       **changes)})


def load_config(path=None) -> Config:
    """The default configuration, updated from a JSON file if given.

    The file holds ``{"extract": {"calibration": "exposure", ...}}``; unknown
    stages or fields are errors naming the file.
    """
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SkyModellingError(f"{path}: cannot read configuration ({exc})") from exc
    stages = {f.name: f.type for f in dataclasses.fields(Config)}
    kwargs = {}
    for stage, values in data.items():
        if stage not in stages:
            raise SkyModellingError(f"{path}: unknown stage {stage!r}")
        cls = {f.name: f.default_factory for f in dataclasses.fields(Config)}[stage]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise SkyModellingError(f"{path}: unknown {stage} setting(s) {sorted(unknown)}")
        kwargs[stage] = cls(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in values.items()})
    return Config(**kwargs)
