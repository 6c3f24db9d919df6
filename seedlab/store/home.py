"""``Store``: one seedlab home, the catalogue side (``Catalog``) and the read side
(``Reads``) together."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from seedlab.errors import StoreError
from seedlab.store.catalog import Catalog
from seedlab.store.journal import Journal
from seedlab.store.reads import Reads
from seedlab.store.shipped import default_home, is_user_home, open_user_home
from seedlab.store.tables import DATA_FOLDERS


class Store(Catalog, Reads):
    """A seedlab home: predictions, instances, masks, annotations and runs.

    ``home`` defaults to ``$SEEDLAB_HOME``, else the user home ``home/`` beside the
    shipped study in ``data/``, which opening brings in (``seedlab.store.shipped``). Opening a home whose catalogue is
    missing (a fresh clone of the repository) or unreadable rebuilds the catalogue: from
    the journal where the home has one, else from the files. ``create=False`` refuses a
    home that does not exist instead of creating it.
    """

    def __init__(self, home: str | Path | None = None, *, create: bool = True) -> None:
        self.home = Path(home).resolve() if home is not None else default_home()
        if not self.home.exists():
            # The checkout's own user home is made on first use, whatever ``create`` says:
            # opening it brings in the shipped study (``is_home`` counts it as a store).
            if not create and not is_user_home(self.home):
                raise StoreError(f"seedlab home {self.home} does not exist")
            self.home.mkdir(parents=True)
        elif not self.home.is_dir():
            raise StoreError(f"seedlab home {self.home} is not a folder")
        self._duck_lock = threading.Lock()
        self._duck: duckdb.DuckDBPyConnection | None = None
        self.journal = Journal(self.home)
        self._init_catalog()
        if is_user_home(self.home):
            open_user_home(self, Store)

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    @staticmethod
    def is_home(path: str | Path) -> bool:
        """Whether ``path`` holds a seedlab store: a catalogue, or the data files a
        catalogue is rebuilt from (a fresh clone of the repository's ``data/``), or is
        this checkout's user home, which opening makes and fills from the shipped study
        (on a fresh clone it does not exist yet)."""
        path = Path(path)
        return (path / "catalog.sqlite").exists() or any(
            (path / folder).is_dir() for folder in (*DATA_FOLDERS, "journal")) \
            or is_user_home(path)

