"""Files that hold tokens or credentials: readable by their owner only, whatever the umask.

The store's database with its write-ahead log and shared-memory file, and the sandbox's keyring and
sandbox.json, all carry secrets. Each is created with mode 0600 from the start (a chmod after writing
leaves a moment in which the content is readable by all), and a directory created for them gets 0700.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) with any missing parents. An existing directory is left as it is,
    since it may be the operator's (a relative store path lives beside the configuration file), but a
    group- or world-accessible one is reported."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "%s is open to other users (mode %o); the files the gateway keeps there are 0600, but 0700 also"
                " hides their names",
                path,
                mode,
            )


def restrict(path: Path) -> None:
    """Make an existing file 0600; a missing one is fine."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode != PRIVATE_FILE_MODE:
        path.chmod(PRIVATE_FILE_MODE)
        log.info("made %s readable by its owner only (mode was %o)", path, mode)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600, or make an existing one 0600 (its content is kept)."""
    restrict(path)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` by a 0600 file holding ``text`` (see ``write_private_bytes``)."""
    write_private_bytes(path, text.encode())


def write_private_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` by a 0600 file holding ``data``. The file appears complete, never half
    written, so a reader waiting for it (as sandbox users do for sandbox.json) reads it whole."""
    draft = path.with_name(path.name + ".tmp")
    create_private_file(draft)
    draft.write_bytes(data)
    draft.replace(path)