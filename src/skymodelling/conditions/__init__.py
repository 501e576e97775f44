"""Observing conditions: site, ephemeris, zodiacal light, starlight, solar activity."""
