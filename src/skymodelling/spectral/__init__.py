"""Spectral operations on many spectra at once: features, photometry."""
