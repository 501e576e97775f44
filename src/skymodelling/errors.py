"""Exceptions raised by skymodelling.

Every error that concerns a file names the file, so a user running over
thousands of plates can find the culprit from one line of a log.
"""
from __future__ import annotations


class SkyModellingError(Exception):
    """Base class for the package's errors (the command line prints them on one line)."""


class BossFileError(SkyModellingError):
    """A BOSS file is missing, unreadable, or not what its name says.

    Parameters
    ----------
    path : str or path-like
        The offending file.
    reason : str
        What is wrong with it.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
