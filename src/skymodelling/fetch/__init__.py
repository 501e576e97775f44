"""Fetch BOSS reduction files from the SDSS archive, or read a local mirror in place.

:mod:`.archive` builds the archive paths (with ``sdss-access``) and the list of
files extract reads; :mod:`.download` fetches them (parallel, resumable,
verified); :mod:`.stream` fetches and processes plate by plate. See docs/fetch.md.
"""
