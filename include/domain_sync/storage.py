"""Where the sync keeps what its tasks share: the data folder, local or on object storage.

Every task of a run may run on another machine (CeleryExecutor, Kubernetes): the run folder, the committed
state, the alerting files and the credentials ledger live under one data folder, `DOMAIN_SYNC_DATA_DIR`, which is
a local folder (a path or a `file://` URL) or an object storage URL (`abfs://container/folder` through adlfs,
`s3://bucket/folder` through s3fs, `gs://bucket/folder` through gcsfs) reached with the Airflow connection
`DOMAIN_SYNC_DATA_CONN_ID` (airflow.sdk.ObjectStoragePath). A local folder is a `pathlib.Path` (the operating
system's atomic rename and hard link, and the 0700/0600 privacy below, need the real path); a remote one an
ObjectStoragePath. Code past this module uses only what both have (`/`, `name`, `parent`, `exists`, `is_dir`,
`open`, `read_text`, `write_text`) and the helpers here; nothing else assumes a local path.

Writers never lock. Three rules replace the file locks:
  - whole objects: a reader sees a file whole or not at all (`write_json_atomic`, `replacing`, `write_parquet`: local
    files are written aside and renamed; remote objects are uploaded in one request or one block list commit);
  - one writer per object: what parallel tasks record goes to one object per writer (a run's summary has a
    section file per stage, its delta links a file per resource), composed on read;
  - create-if-absent (`create_exclusive`): the one conditional write, on which `JsonLog` builds a
    compare-and-append log: entries <seq:012d>.json, the current one the highest; a writer that read entry n
    creates n+1 and fails (`LogConflict`) when another got there first. The committed state's pointer, the state
    lock and every document several runs update (`update_document`) are such logs.

Privacy: everything under a local data folder is private to the account the sync runs as, whatever the umask:
folders 0700 (`private_dir`), files 0600 (written through mkstemp; Parquet and text files stages write are set
0600 by `make_private`, which RunFolder.update_summary runs over the run folder at the end of every stage).
Object storage has no modes: access is the storage account's (the connection's) business.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import stat
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from domain_sync.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

StoragePath = Union[Path, "ObjectStoragePath"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Object stores whose fsspec file system creates an object only if it does not exist, atomically (the
# `create` mode of pipe_file): adlfs uploads with If-None-Match: * (tested against Azurite); s3fs (If-None-Match)
# and gcsfs (ifGenerationMatch=0) are meant to do likewise, untested here.
ATOMIC_CREATE_PROTOCOLS = ("abfs", "abfss", "az", "s3", "s3a", "gs", "gcs")

log = logging.getLogger(__name__)


class StorageUnsupported(PermanentError):
    """A data folder URL whose storage cannot create an object only if it is absent (the state commit needs it)."""


def location(url: str | os.PathLike, conn_id: str = "") -> StoragePath:
    """The folder `url` names: a local path or file:// URL as a Path, an object storage URL as an
    ObjectStoragePath with the Airflow connection `conn_id` (empty: the file system's own credentials)."""
    text = os.fspath(url)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme in ("", "file", "local") or len(parts.scheme) == 1:  # a Windows drive letter is no scheme
        return Path(urllib.parse.unquote(parts.path) if parts.scheme in ("file", "local") else text)
    if parts.scheme not in ATOMIC_CREATE_PROTOCOLS:
        raise StorageUnsupported(f"data folder {text!r}: {parts.scheme}:// is not supported; the state commit needs "
                                 f"an object store that creates an object only if it is absent: a local folder, "
                                 f"{', '.join(p + '://' for p in ATOMIC_CREATE_PROTOCOLS)}")
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(text, conn_id=conn_id or None)


def is_local(path: StoragePath) -> bool:
    return isinstance(path, Path)


def _fs_path(path: StoragePath) -> tuple[Any, str]:
    return path.fs, path.path


# ---- privacy (local folders only)

def private_dir(path: StoragePath, root: StoragePath | None = None) -> StoragePath:
    """Make `path` a folder only its owner can open (0700) whatever the umask: it and any missing parent
    are created 0700; existing folders from `root` (the data folder) down to `path` are set 0700 too.
    Object storage has no folders to make: the path is returned as it is."""
    if not is_local(path):
        return path
    missing = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # a parallel task made it
            pass
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is cut by the umask, never widened
    if root is not None and is_local(root):
        for folder in (path, *path.parents):
            if folder != root and root not in folder.parents:
                break
            _set_mode(folder, PRIVATE_DIR_MODE)
            if folder == root:
                break
    return path


def make_private(root: StoragePath) -> None:
    """Set every folder under a local `root` (and root) 0700 and every file 0600; symbolic links are left alone."""
    if not is_local(root):
        return
    for folder, _dirs, files in os.walk(root):
        _set_mode(Path(folder), PRIVATE_DIR_MODE)
        for name in files:
            _set_mode(Path(folder) / name, PRIVATE_FILE_MODE)


def _set_mode(path: Path, mode: int) -> None:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
            return
        os.chmod(path, mode)
    except FileNotFoundError:  # a temporary file renamed meanwhile
        pass
    except PermissionError:
        log.warning("cannot make %s private (mode %o): it belongs to another account", path, mode)


# ---- whole objects

def read_bytes(path: StoragePath) -> bytes | None:
    """The object's bytes, None when there is none."""
    try:
        with path.open("rb") as handle:
            return handle.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


def read_json(path: StoragePath, default: Any = None) -> Any:
    data = read_bytes(path)
    return default if data is None else json.loads(data)


def _json_default(value: Any) -> str:
    if isinstance(value, JsonArray):
        raise TypeError("a JsonArray is written only as a value of the top-level object of a compact JSON file")
    return str(value)


def _json_text(data: Any, compact: bool = False) -> str:
    if compact:  # json.dumps: C encoder (json.dump encodes in Python, chunk by chunk)
        return json.dumps(data, separators=(",", ":"), default=_json_default) + "\n"
    return json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"


@contextlib.contextmanager
def replacing(path: StoragePath, text: bool = False) -> Iterator[Any]:
    """A file object to write `path` through; the object appears whole when the block ends, and not at all
    when it raises (local: a 0600 file beside it, renamed into place; remote: a local spool file, uploaded
    in one go)."""
    if is_local(path):
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    else:
        fd, tmp = tempfile.mkstemp(prefix="domain-sync-upload.")
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as handle:
            yield handle
        if is_local(path):
            os.replace(tmp, path)
        else:
            fs, remote = _fs_path(path)
            fs.put_file(tmp, remote)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path: StoragePath, data: bytes) -> None:
    """Write an object whole (readers never see half of it)."""
    if is_local(path):
        with replacing(path) as handle:
            handle.write(data)
    else:
        fs, remote = _fs_path(path)
        fs.pipe_file(remote, data)


def json_array_text(items: Iterable[Any], chunk: int = 1000, **dumps: Any) -> Iterator[str]:
    """The text of json.dumps(list(items), **dumps), in pieces of `chunk` elements: a list of 100,000s of entries
    (a plan's changes) is never held whole, nor as one text. `dumps` must give separators without spaces."""
    yield "["
    pieces: list[str] = []
    first = True
    for item in items:
        pieces.append(json.dumps(item, **dumps))
        if len(pieces) == chunk:
            yield ("" if first else ",") + ",".join(pieces)
            pieces, first = [], False
    if pieces:
        yield ("" if first else ",") + ",".join(pieces)
    yield "]"


class JsonArray:
    """A JSON array that write_json_atomic writes element by element (json_array_text), as a value of the
    top-level object of a compact file."""

    CHUNK = 1000  # elements encoded into one write

    def __init__(self, items: Iterable[Any]):
        self.items = items

    def write(self, handle) -> None:
        for text in json_array_text(self.items, self.CHUNK, separators=(",", ":"), default=_json_default):
            handle.write(text)


def write_json_atomic(path: StoragePath, data: Any, compact: bool = False) -> None:
    """Write JSON whole; `compact` (one line) for large machine files. Local files are 0600 in a 0700 folder.
    The text is written as it is (a plan of 100,000s of changes is hundreds of MB: no second, encoded copy);
    values of a compact top-level object given as JsonArray are written element by element."""
    streamed = compact and isinstance(data, dict) and any(isinstance(v, JsonArray) for v in data.values())
    with replacing(path, text=True) as handle:
        if not streamed:
            handle.write(_json_text(data, compact))
            return
        handle.write("{")
        for number, (key, value) in enumerate(data.items()):
            handle.write(("," if number else "") + json.dumps(str(key)) + ":")
            if isinstance(value, JsonArray):
                value.write(handle)
            else:
                handle.write(json.dumps(value, separators=(",", ":"), default=_json_default))
        handle.write("}\n")


def write_text(path: StoragePath, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_lines(path: StoragePath, lines: Iterable[str]) -> None:
    """Write text line by line (each ends with a newline), whole or not at all: a long text is never held at once."""
    with replacing(path, text=True) as handle:
        for line in lines:
            handle.write(line + "\n")


def read_parquet(path: StoragePath, **kwargs):
    """A Parquet file as a pandas frame (kwargs: read_parquet's, e.g. columns)."""
    import pandas as pd

    if is_local(path):
        return pd.read_parquet(path, **kwargs)
    with path.open("rb") as handle:
        return pd.read_parquet(handle, **kwargs)


def parquet_rows(path: StoragePath) -> int:
    """The number of rows of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    if is_local(path):
        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def parquet_columns(path: StoragePath) -> list[str]:
    """The column names of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    if is_local(path):
        return list(pq.ParquetFile(path).schema_arrow.names)
    with path.open("rb") as handle:
        return list(pq.ParquetFile(handle).schema_arrow.names)


def write_parquet(frame, path: StoragePath) -> None:
    """Write a pandas frame as Parquet, whole (no index)."""
    with replacing(path) as handle:
        frame.to_parquet(handle, index=False)


def copy_file(source: StoragePath, target: StoragePath) -> None:
    """Copy an object's bytes into a new one (locally 0600: shutil.copy2 would carry the source's mode)."""
    if is_local(source) and is_local(target):
        with open(source, "rb") as src, replacing(target) as dst:
            shutil.copyfileobj(src, dst)
    elif not is_local(source) and not is_local(target) and source.protocol == target.protocol:
        source.fs.copy(source.path, target.path)
    else:
        with source.open("rb") as src, replacing(target) as dst:
            shutil.copyfileobj(src, dst)


def create_exclusive(path: StoragePath, data: bytes) -> bool:
    """Create the object with `data` only if there is none: True when this call created it, False when it was
    there. Atomic: of any number of concurrent callers on any machines exactly one gets True, and the object
    is whole when it appears (local: written aside, then hard-linked into place, which fails if the name
    exists; remote: an upload conditional on the object's absence, If-None-Match: * on Azure Blob and S3)."""
    if is_local(path):
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    fs, remote = _fs_path(path)
    try:
        fs.pipe_file(remote, data, mode="create")
    except FileExistsError:
        return False
    except Exception as exc:  # the store refused the condition (409 / 412) in its own words
        if _exists_error(exc):
            return False
        raise
    return True


def _exists_error(exc: Exception) -> bool:
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return status in (409, 412) or type(exc).__name__ in ("ResourceExistsError", "PreconditionFailed")


# ---- folders

def children(folder: StoragePath) -> list[StoragePath]:
    """What a folder holds (files and folders), freshly listed; empty when it does not exist."""
    if is_local(folder):
        try:
            return list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
    fs, remote = _fs_path(folder)
    fs.invalidate_cache(remote)  # other machines write here: never answer from a cached listing
    try:
        names = fs.ls(remote, detail=False)
    except FileNotFoundError:
        return []
    return [folder / str(name).rstrip("/").rsplit("/", 1)[-1] for name in names
            if str(name).rstrip("/") != remote.rstrip("/")]


def modified_times(folder: StoragePath) -> dict[str, float]:
    """{file name: modification time (epoch seconds)} of the files directly in a folder; empty when it does not exist."""
    if is_local(folder):
        times = {}
        for path in children(folder):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    times[path.name] = path.stat().st_mtime
        return times
    fs, remote = _fs_path(folder)
    fs.invalidate_cache(remote)
    try:
        entries = fs.ls(remote, detail=True)
    except FileNotFoundError:
        return {}
    times = {}
    for entry in entries:
        if entry.get("type") != "file":
            continue
        when = entry.get("last_modified") or entry.get("LastModified") or entry.get("mtime") or entry.get("updated")
        if isinstance(when, str):
            from datetime import datetime

            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        times[str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]] = (
            when.timestamp() if hasattr(when, "timestamp") else float(when or 0))
    return times


def is_folder(path: StoragePath) -> bool:
    if is_local(path):
        return path.is_dir()
    return bool(children(path))


def remove(path: StoragePath) -> None:
    """Remove one object; gone already is fine."""
    if is_local(path):
        path.unlink(missing_ok=True)
        return
    fs, remote = _fs_path(path)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(remote)


def remove_tree(path: StoragePath) -> None:
    """Remove a folder and everything in it; gone already is fine."""
    if is_local(path):
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile
            shutil.rmtree(path)
        return
    fs, remote = _fs_path(path)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(remote, recursive=True)


# ---- the compare-and-append log

class LogConflict(TransientError):
    """Another writer appended the entry this one meant to (it read an older state). Callers read again and
    retry, or turn it into their own error; escaping a task, it is retried by Airflow."""


SEQ_WIDTH = 12
LOG_KEEP = 16  # entries a log keeps at least (older ones are removed once they are LOG_PRUNE_AGE old)
LOG_PRUNE_AGE = 3600.0  # seconds: far longer than any writer takes from reading the log to appending to it


class JsonLog:
    """A log of JSON entries in `folder`, named by sequence number (<seq:012d>.json); the entry with the highest
    number is the current one. `append(base, entry)` creates entry base+1 with `create_exclusive`, so of the
    writers that read entry `base` only one can append: the others get LogConflict and must read again. An
    entry is never changed after it is written; a crash leaves the log at the last whole entry.

    `legacy`: the single file that held the current entry before the log (sequence 0 while the log is empty).
    Old entries are removed once more than LOG_KEEP are newer and they are older than LOG_PRUNE_AGE: a writer
    that read entry n never finds n+1 removed and creatable again, as it appends within that hour."""

    def __init__(self, folder: StoragePath, legacy: StoragePath | None = None):
        self.folder = folder
        self.legacy = legacy

    def _seqs(self) -> list[int]:
        seqs = []
        for path in children(self.folder):
            stem, _, suffix = path.name.partition(".")
            if suffix == "json" and stem.isdigit():
                seqs.append(int(stem))
        return sorted(seqs)

    def entry_path(self, seq: int) -> StoragePath:
        return self.folder / f"{seq:0{SEQ_WIDTH}d}.json"

    def latest(self) -> tuple[int, Any]:
        """(sequence number, entry) of the current entry; (0, the legacy file's content or None) when empty."""
        for _ in range(3):
            seqs = self._seqs()
            if not seqs:
                return 0, (read_json(self.legacy) if self.legacy is not None else None)
            entry = read_json(self.entry_path(seqs[-1]), None)
            if entry is not None:  # the newest entry is never removed; a listing can lag behind a prune
                return seqs[-1], entry
        raise FileNotFoundError(f"{self.folder}: the newest log entry vanished while it was read")

    def append(self, base: int, entry: Any) -> int:
        """Append `entry` after entry `base` (the one the caller read); its sequence number. LogConflict when
        another writer appended after `base` first."""
        seq = base + 1
        if not create_exclusive(self.entry_path(seq), _json_text(entry).encode()):
            raise LogConflict(f"{self.entry_path(seq)} exists: another writer appended after entry {base}")
        self._prune(seq)
        return seq

    def _prune(self, newest: int) -> None:
        old = [s for s in self._seqs() if s <= newest - LOG_KEEP]
        if not old:
            return
        times = modified_times(self.folder)
        cutoff = time.time() - LOG_PRUNE_AGE
        for seq in old:
            path = self.entry_path(seq)
            if times.get(path.name, time.time()) < cutoff:
                remove(path)


def update_document(path: StoragePath, change: Callable[[Any], Any], attempts: int = 50) -> Any:
    """Update a JSON document several tasks (and machines) update: `change(current)` (None when there is none
    yet; it must not change its argument, and may run again) returns the new content, or the current one for
    no change. The document is a JsonLog in <path without .json>/ (the file `path` is read while there is
    none). Returns what was written (or kept)."""
    doc_log = document_log(path)
    for _ in range(attempts):
        seq, current = doc_log.latest()
        new = change(current)
        if new == current:
            return current
        try:
            doc_log.append(seq, new)
            return new
        except LogConflict:
            time.sleep(random.uniform(0, 0.05))  # writers that collided do not collide again in step
            continue
    raise LogConflict(f"{path}: {attempts} writers in a row got there first; giving up")


def read_document(path: StoragePath, default: Any = None) -> Any:
    """The current content of a document `update_document` writes."""
    content = document_log(path).latest()[1]
    return default if content is None else content


def document_log(path: StoragePath) -> JsonLog:
    return JsonLog(path.parent / path.name.removesuffix(".json"), legacy=path)
