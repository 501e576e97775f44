"""Keep benchmarks/RESULTS.md: each benchmark rewrites its own section."""
from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = ("# Benchmark results\n\nThe latest figures measured by the scripts in this folder; each "
          "script rewrites its own section.\nMachines are noisy: compare ratios measured in one "
          "run, not figures across sections.\n")


def machine() -> str:
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}")


def realsky_dir() -> Path:
    """The real spec files' folder: $SKYMODELLING_SHARED/realsky, else ../shared/realsky."""
    return Path(os.environ.get("SKYMODELLING_SHARED",
                               Path(__file__).resolve().parents[2] / "shared")) / "realsky"


def update_section(name: str, body: str) -> None:
    """Replace (or append) the section ``## name`` of RESULTS.md with ``body``."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    stamp = datetime.date.today().isoformat()
    section = f"## {name}\n\n_Measured {stamp} on {machine()}._\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text.rstrip() + "\n")


def decompose_overrides(sets):
    """A Config with decompose settings changed by ``--set NAME=JSON`` options.

    For experiments: the figures of such a run describe other settings than the default's,
    so the benchmarks do not write RESULTS.md with them.
    """
    import json

    from skymodelling.config import Config

    changes = {}
    for item in sets or ():
        name, _, value = item.partition("=")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        changes[name.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return Config().replace("decompose", **changes)
