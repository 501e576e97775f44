"""The condition columns the sky models use (no imports: the CLI reads them cheaply)."""

#: Enrich columns the models use: name, unit, meaning.
CONDITION_COLUMNS = (
    ("MOON_ILL", "", "illuminated fraction of the Moon"),
    ("MOON_PHASE", "rad", "Sun-Moon-Earth phase angle (0 full)"),
    ("MOON_ALT", "deg", "Moon altitude"),
    ("MOON_SEP", "deg", "Moon-pointing separation"),
    ("SUN_ALT", "deg", "Sun altitude"),
    ("OBS_ZENITH", "deg", "zenith distance of the pointing"),
    ("ECL_LAT", "deg", "ecliptic latitude of the pointing"),
    ("ECL_LON_SUN", "deg", "helio-ecliptic longitude of the pointing"),
    ("GAL_LAT", "deg", "galactic latitude of the pointing"),
    ("ZODI", "S10", "zodiacal light at 500 nm"),
    ("ISL", "S10", "integrated starlight"),
    ("SOLARFLUX", "sfu", "10.7 cm solar flux of the day"),
    ("SOLARFLUX_81", "sfu", "81-day mean 10.7 cm solar flux"),
    ("HOUR", "h", "hours since sunset"),
    ("MONTH", "", "month of the night (1-12)"),
    ("PHOTO", "", "photometricity: 1 clear, 0 cloudy, 0.5 unknown"),
)
CONDITION_NAMES = tuple(c[0] for c in CONDITION_COLUMNS)

#: Boosted-model inputs derived from the optional TAI-MID column (epoch and
#: season); missing values when a conditions table has no TAI-MID.
TIME_FEATURES = ("EPOCH", "SEASON_SIN", "SEASON_COS")
