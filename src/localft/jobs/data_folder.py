"""The data folder a database belongs to: a process that sees another folder must not take jobs.

Files, checkpoints and models are on disk under `LOCALFT_HOME`, their records in the database. A worker started
with another folder (a different `LOCALFT_HOME`, or a machine without the shared folder mounted) would claim jobs
and fail each one for want of its files. So the server marks its data folder when it starts (a marker file holding
an id, and the same id in the database), and a worker checks that its folder carries that mark before it takes a
job, refusing to start otherwise.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from localft.errors import StoreError
from localft.jobs.store import Store

MARKER = ".localft-data-id"
_KEY = "data_folder_id"


class DataFolderMismatch(StoreError):
    """This process's data folder is not the one the database's files, checkpoints and models are in."""


def mark_data_folder(store: Store, home: Path) -> str:
    """The server's side: make `home` the database's data folder the first time, then check it is; returns its id.

    A folder already marked for another database keeps its id (a data folder moved to a new database).
    """
    marker = home / MARKER
    local = _read(marker)
    if store.get_meta(_KEY) is None:
        proposed = local or secrets.token_hex(12)
        if store.set_meta_once(_KEY, proposed) == proposed and local is None:
            _write(marker, proposed)
    return check_data_folder(store, home)


def check_data_folder(store: Store, home: Path) -> str:
    """A worker's side: `home` must be the folder the server marked; returns its id, or raises DataFolderMismatch
    saying what differs and what to do."""
    stored = store.get_meta(_KEY)
    url = store.engine.url.render_as_string(hide_password=True)
    if stored is None:
        raise DataFolderMismatch(
            f"No server has marked its data folder in the database {url} yet: start `localft serve` on it first "
            "(it writes the mark this check compares).",
            code="data_folder_unmarked",
        )
    marker = home / MARKER
    local = _read(marker)
    if local == stored:
        return stored
    found = f"{home.resolve()} has no {MARKER} file" if local is None else f"{marker.resolve()} holds {local}"
    raise DataFolderMismatch(
        f"This process does not see the data folder of the database {url}: the server's folder is marked "
        f"{stored}, but {found}. Files, checkpoints and models live in that folder, so every job would fail here. "
        "Start this process with the server's LOCALFT_HOME (on another machine: that folder, shared), or with a "
        "database of its own.",
        code="data_folder_mismatch",
    )


def _read(marker: Path) -> str | None:
    try:
        return marker.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write(marker: Path, value: str) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text(value + "\n")
    os.replace(partial, marker)
