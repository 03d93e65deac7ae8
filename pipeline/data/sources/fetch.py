"""A file of a PyPI package (an sdist or a wheel), fetched once through pip into `data.cache_dir`.

Some built-in datasets ship inside packages on PyPI (the sentiment ratings in the vadersentiment
sdist, Django's message catalogues in its wheel). PyPI is the only place they come from; after the
first fetch nothing is downloaded again.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from pipeline.errors import DataError


def pip_file(
    requirement: str, *, filename: str, kind: Literal["sdist", "wheel"], cache_dir: str | Path, folder: str
) -> Path:
    """`cache_dir/folder/filename`, fetched with `pip download --no-deps` the first time."""
    target = Path(cache_dir).resolve() / folder / filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    form = ["--no-binary", ":all:"] if kind == "sdist" else ["--only-binary", ":all:"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *form, requirement, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        got = Path(tmp) / filename
        if done.returncode != 0 or not got.is_file():
            said = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"could not fetch the {requirement} {kind} from PyPI into {target.parent} "
                f"(pip: {said}); allow pip to reach PyPI once, or put {filename} there yourself"
            )
        got.replace(target)  # atomic: a half-downloaded file is never taken for the package
    return target
