"""Installing a plugin distribution of this repository (the sample, the Slack example) as a user
would, with pip, into a directory of its own. pip builds from a copy, so the build leaves nothing
(build/, *.egg-info) in the tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def install_distribution(source: Path, work: Path) -> tuple[Path, Path]:
    """Copy ``source`` into ``work`` and pip-install the copy into ``work/site``; returns (the copy,
    the site directory to put on PYTHONPATH)."""
    copy = work / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(copy)],
        check=True,
        timeout=300,
        cwd=work,
    )
    return copy, site
