"""Opening a store's database: URLs (default, display without password), the SQLAlchemy engine with SQLite's
pragmas (WAL, busy timeout, foreign keys; read-only when the file cannot be written), and database faults
turned into one :class:`StorageError` line that names the storage and what is wrong with it."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from deconstruct._errors import DeconstructError, StorageError


class StudyNotFound(DeconstructError):
    """An unknown study name; the message lists the studies the storage holds."""


DEFAULT_URL = "sqlite:///deconstruct.db"
BUSY_TIMEOUT_S = 60.0  # how long a SQLite writer waits for another's lock before "database is locked"


def default_url() -> str:
    """``$DECONSTRUCT_STORAGE``, else ``sqlite:///deconstruct.db`` (in the working directory)."""
    return os.environ.get("DECONSTRUCT_STORAGE") or DEFAULT_URL


def display_url(url: str) -> str:
    """The URL without its password (safe to print)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url




def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, the writer never blocks readers
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cursor.close()


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A reader writes nothing: no journal-mode switch (that needs write access), just the busy timeout."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


#: what a database's own message means, for the one line a user sees (first match wins)
_DIAGNOSES = (
    ("file is not a database", "it is not a SQLite database (a junk or truncated file?)"),
    ("malformed", "the SQLite file is damaged (truncated or corrupt)"),
    ("readonly database", "it is read-only here (a read-only file, folder or file system)"),
    ("read-only file system", "it is on a read-only file system"),
    ("unable to open database file", "the file cannot be opened (a missing folder, or no permission)"),
    ("disk is full", "the disk is full"),
    ("disk i/o error", "the disk reported an I/O error"),
    ("database is locked", f"another process held a lock for more than {BUSY_TIMEOUT_S:.0f} s"),
    ("connection refused", "cannot connect: no database server answers there (is it running?)"),
    ("could not translate host name", "cannot connect: unknown host"),
    ("does not exist", None),  # PostgreSQL: database "x" does not exist — its own words are clear
    ("password authentication failed", "cannot connect: password authentication failed"),
    ("value too long", "a value is too long for its column (a study name over 255 characters?)"),
)


def storage_error(url: str, exc: BaseException) -> StorageError:
    """One line naming the storage and what is wrong with it, from a database error."""
    original = getattr(exc, "orig", None) or exc
    raw = " ".join(str(original).split()) or type(original).__name__
    what = raw
    path = sqlite_path(url)
    if path is not None and os.path.exists(path) and _read_only(path):
        return StorageError(f"storage {display_url(url)}: it is read-only here (a read-only file, folder or file "
                            "system); `study list`, `study show` and `report` can still read it")
    for needle, meaning in _DIAGNOSES:
        if needle in raw.lower():
            what = meaning if meaning is not None else raw.rsplit("FATAL:", 1)[-1].strip()
            break
    return StorageError(f"storage {display_url(url)}: {what}")


def _read_only(path: str) -> bool:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
    except (OSError, AttributeError):
        pass
    return not os.access(path, os.W_OK) or not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)


def watch_errors(engine: Engine, url: str) -> Engine:
    """Make ``engine`` raise one :class:`StorageError` line for a database fault. Integrity errors (a unique
    row another worker inserted first) pass unchanged: callers, Optuna included, rely on them."""

    def handle(context: Any) -> None:
        if isinstance(context.sqlalchemy_exception, IntegrityError):
            return
        raise storage_error(url, context.original_exception) from context.original_exception

    event.listen(engine, "handle_error", handle)
    return engine


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    db = parsed.database
    return None if not db or db == ":memory:" or db.startswith("file:") else db


def make_engine(url: str, *, create: bool = True, readonly: bool = False, immutable: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and the pragmas above. Any database error
    it raises later is one :class:`StorageError` line naming the storage.

    ``readonly`` opens a SQLite file read-only (``mode=ro``: a reader on a read-only file system, or of a
    file it may not write); ``immutable`` also skips SQLite's locking, for a file nobody can be writing."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DeconstructError(f"invalid storage URL {url!r}: {exc}") from None
    kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    target: Any = url
    if parsed.get_backend_name() == "sqlite":
        if path is not None:
            if (readonly or not create) and not os.path.exists(path):
                raise StudyNotFound(f"no database at {path} (storage {display_url(url)}); run `deconstruct study run` first")
            if os.path.isdir(path):
                raise StorageError(f"storage {display_url(url)}: {path} is a directory, not a SQLite file")
            if readonly:
                query = {"mode": "ro", "uri": "true", **({"immutable": "1"} if immutable else {})}
                target = parsed.set(database=f"file:{os.path.abspath(path)}", query=query)
            else:
                folder = os.path.dirname(os.path.abspath(path))
                try:
                    os.makedirs(folder, exist_ok=True)
                except OSError as exc:
                    raise StorageError(f"storage {display_url(url)}: cannot create its folder {folder}: {exc.strerror}") from None
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(target, **kwargs)
    except Exception as exc:  # a missing driver (psycopg2, …) or a bad URL
        raise DeconstructError(f"cannot open storage {display_url(url)}: {' '.join(str(exc).split())}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_read_pragmas if readonly else _sqlite_pragmas)
    return watch_errors(engine, url)

