"""Local adapters: blobs as files under a root directory, dataset records in one SQLite file."""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from platform_core.errors import BlobNotFound, ConcurrentUpdate, DatasetExists, StorageError
from platform_core.records import DatasetRecord

# In-flight writes are temp files named with this prefix; keys may not use it.
_TEMP_PREFIX = ".~tmp-"


def check_key(key: str) -> list[str]:
    """Split a '/'-separated key into parts, or raise ValueError if it could leave the root."""
    if not isinstance(key, str) or not key:
        raise ValueError("blob key must be a non-empty string")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"blob key {key!r} is absolute or contains a backslash or NUL")
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", "..") or part.startswith(_TEMP_PREFIX):
            raise ValueError(f"blob key {key!r} has an empty, '.', '..' or reserved part")
    return parts


@contextmanager
def _os_errors(operation: str, key: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StorageError(operation, key, f"{type(exc).__name__}: {exc.strerror or exc}") from exc


class LocalBlobStore:
    """BlobStore over files: key 'a/b/c' is the file ``root/a/b/c``."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key))

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write ``data`` to a temp file beside the target, then rename it into place."""
        path = self._path(key)
        with _os_errors("put", key):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def get(self, key: str) -> bytes:
        """Return the file's bytes; a missing file (or a directory) is BlobNotFound."""
        path = self._path(key)
        with _os_errors("get", key):
            try:
                return path.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        """True when the key names a regular file."""
        path = self._path(key)
        with _os_errors("exists", key):
            return path.is_file()

    def size(self, key: str) -> int:
        """The file's length; a missing file (or a directory) is BlobNotFound."""
        path = self._path(key)
        with _os_errors("size", key):
            if not path.is_file():
                raise BlobNotFound(key)
            return path.stat().st_size

    def delete(self, key: str) -> None:
        """Remove the file if present."""
        path = self._path(key)
        with _os_errors("delete", key):
            if path.is_file():
                path.unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix``, sorted; only the prefix's directory is walked."""
        if prefix.startswith("/") or "\\" in prefix or "\x00" in prefix:
            raise ValueError(f"blob prefix {prefix!r} is absolute or contains a backslash or NUL")
        directory, _, _ = prefix.rpartition("/")
        base = self._path(directory) if directory else self._root
        keys: list[str] = []
        with _os_errors("list", prefix):
            for dirpath, _dirs, files in os.walk(base):
                rel = Path(dirpath).relative_to(self._root).as_posix()
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix) and not name.startswith(_TEMP_PREFIX):
                        keys.append(key)
        return sorted(keys)

    def upload_form(self, key: str, **_: object) -> None:
        """Files have no presigned form: the caller receives the file itself."""
        return None


class SqliteFile:
    """One SQLite database file: WAL on first open, a connection per transaction, errors wrapped."""

    def __init__(self, path: Path, schema: tuple[str, ...], busy_timeout_s: float) -> None:
        self._path = Path(path)
        self._timeout = busy_timeout_s
        with self.transaction("init", str(self._path)) as conn:
            self._use_wal(conn)
            for statement in schema:
                conn.execute(statement)

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs the file to itself and SQLite fails at once instead of
        # waiting, so a second process opening a new database retries within the timeout.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError:
                mode = ""
            if mode == "wal":
                return
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"could not switch to WAL (mode {mode!r})")
            time.sleep(0.02)

    @contextmanager
    def transaction(self, operation: str, key: str,
                    keep: tuple[type[Exception], ...] = ()) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error.

        SQLite and OS errors become StorageError, except those in ``keep``, which the caller maps."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self._path, timeout=self._timeout)) as conn:
                with conn:
                    yield conn
        except keep:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(operation, key, f"{type(exc).__name__}: {exc}") from exc


class SqliteDatasetRepository:
    """DatasetRepository in SQLite: one connection per call, WAL so processes can share the file."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS datasets (tenant TEXT NOT NULL, name TEXT NOT NULL, "
        "revision INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tenant, name))",
    )

    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self._db = SqliteFile(path, self._SCHEMA, busy_timeout_s)

    def _connect(self, operation: str, key: str):
        # create() turns an IntegrityError into DatasetExists.
        return self._db.transaction(operation, key, keep=(sqlite3.IntegrityError,))

    def get(self, tenant: str, name: str) -> DatasetRecord | None:
        """The record, or None."""
        with self._connect("get", f"{tenant}/{name}") as conn:
            row = conn.execute(
                "SELECT revision, data FROM datasets WHERE tenant=? AND name=?", (tenant, name)
            ).fetchone()
        return None if row is None else _decode(row)

    def create(self, record: DatasetRecord) -> None:
        """Insert; the primary key makes a second create of (tenant, name) fail."""
        try:
            with self._connect("create", f"{record.tenant}/{record.name}") as conn:
                conn.execute(
                    "INSERT INTO datasets (tenant, name, revision, data) VALUES (?, ?, ?, ?)",
                    (record.tenant, record.name, record.revision, _encode(record)),
                )
        except sqlite3.IntegrityError:
            raise DatasetExists(record.name) from None

    def replace(self, record: DatasetRecord, expected_revision: int) -> None:
        """Overwrite only if the stored revision is ``expected_revision``."""
        with self._connect("replace", f"{record.tenant}/{record.name}") as conn:
            cursor = conn.execute(
                "UPDATE datasets SET revision=?, data=? WHERE tenant=? AND name=? AND revision=?",
                (record.revision, _encode(record), record.tenant, record.name, expected_revision),
            )
            if cursor.rowcount == 0:
                raise ConcurrentUpdate(record.name)

    def delete(self, tenant: str, name: str) -> None:
        """Remove the record if present."""
        with self._connect("delete", f"{tenant}/{name}") as conn:
            conn.execute("DELETE FROM datasets WHERE tenant=? AND name=?", (tenant, name))

    def list(self, tenant: str) -> list[DatasetRecord]:
        """The tenant's records sorted by name."""
        with self._connect("list", tenant) as conn:
            rows = conn.execute(
                "SELECT revision, data FROM datasets WHERE tenant=? ORDER BY name", (tenant,)
            ).fetchall()
        return sorted((_decode(row) for row in rows), key=lambda r: r.name)


def _encode(record: DatasetRecord) -> str:
    return json.dumps(record.as_dict(), sort_keys=True)


def _decode(row: tuple[int, str]) -> DatasetRecord:
    data = json.loads(row[1])
    data["revision"] = row[0]
    return DatasetRecord.from_dict(data)
