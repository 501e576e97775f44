"""Bundled data files, found with importlib.resources.

================================  =====================================================
``sky_features.csv``              named sky lines and continuum bands
                                  (``tools/make_feature_list.py``)
``solar_spectrum.csv``            ASTM G173-03 extraterrestrial solar spectrum, ~1 nm (ASTM / NREL
                                  reference data, via pvlib; ``tools/make_solar_spectrum.py``)
``solar_kurucz.csv``              R. L. Kurucz's computed solar flux at R = 2000, 3000-11000 A
                                  (kurucz.harvard.edu, freely distributed; also in the Apache-2.0
                                  rms-solar package; ``tools/make_kurucz_solar.py``)
``leinert1998_table17.csv``       zodiacal light vs helio-ecliptic position (Leinert et al. 1998)
``isl_vs_galactic_latitude.csv``  integrated starlight vs galactic latitude
``nightglow_forest.csv``          decompose's nightglow template: the faint emission forest of
                                  real BOSS sky (SDSS spec files of plate 7338;
                                  ``benchmarks/bench_nightglow.py``)
================================  =====================================================
"""
