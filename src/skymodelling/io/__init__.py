"""BOSS DR12 file formats: one reader/writer module per product.

* :mod:`~skymodelling.io.paths` - file names and the redux folder layout
* :mod:`~skymodelling.io.frames` - spFrame / spCFrame
* :mod:`~skymodelling.io.spfluxcalib` - spFluxcalib
* :mod:`~skymodelling.io.spplate` - spPlate (EXPIDnn cards, coadd grid)
* :mod:`~skymodelling.io.platelist` - platelist.fits
* :mod:`~skymodelling.io.traceset` - idlutils trace sets (spFrame wavelengths)
* :mod:`~skymodelling.io.plugmap` - plugmap tables
* :mod:`~skymodelling.io.sppixmask` - SPPIXMASK bits
* :mod:`~skymodelling.io.inspect` - one-paragraph description of any of these files
* :mod:`~skymodelling.io.fitsutil` - shared FITS helpers (error handling, byte order)

Sections cited in the modules refer to the project's BOSS data-model notes.
Submodules are imported explicitly (``from skymodelling.io.frames import
read_spframe``); importing this package loads nothing else.
"""
