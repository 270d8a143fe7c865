"""Atomic file writes and small file helpers.

A crash, a kill -9 or a full disk while writing a checkpoint, ONNX file or engine must
never leave a half-written file under the final name nor destroy the previous one.  So
everything is written to a temporary file in the destination folder, flushed and
fsynced, then renamed over the target (rename is atomic within one filesystem).

Temporary files are named ``.fcn-edge-tmp-<pid>-<random><suffix>``.  A process that
dies between creating one and renaming it (kill -9, power loss) leaves it behind; it
is never mistaken for the artifact (the final name is untouched), and the next atomic
write into the same folder removes it (:func:`remove_stale_temporaries`) once it is
*stale*: its writer's process id is no longer running on this machine and the file
has not changed for :data:`STALE_DEAD_WRITER_S` seconds, or, whatever the process id
says (a folder shared with another machine), it has not changed for
:data:`STALE_ANY_S` seconds.  A live writer keeps touching its file, so it is never
removed under it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Iterator

from fcn_edge.errors import FcnEdgeError

_TMP_PREFIX = ".fcn-edge-tmp-"
TMP_PREFIX = _TMP_PREFIX
# A temporary file whose writer (the pid in its name) is gone and that has not changed for
# this long is left over from a killed process.
STALE_DEAD_WRITER_S = 60.0
# Any temporary file untouched for this long is stale, whoever wrote it (shared folders).
STALE_ANY_S = 3600.0
# Below this much free space a failed write is reported as a full disk: writers that do not
# raise OSError (torch.save raises RuntimeError "file write failed") still get the right sentence.
_DISK_FULL_BYTES = 1 << 20


def check_writable_destination(path: str | os.PathLike) -> Path:
    """Fail early, with one sentence, when ``path``'s folder is missing or read-only."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise FcnEdgeError(f"cannot write {path}: the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise FcnEdgeError(f"cannot write {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FcnEdgeError(f"cannot write {path}: the folder {folder} is not writable")
    if path.is_dir():
        raise FcnEdgeError(f"cannot write {path}: it is a folder, give a file name")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    For writers that want a file name (torch.save, onnx.save with external data,
    TensorRT serialisation).  On any exception the temporary file is removed and the
    existing ``path`` is left untouched.
    """
    final = check_writable_destination(path)
    remove_stale_temporaries(final.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", suffix=final.suffix, dir=final.parent)
    except OSError as exc:  # no inode / no space / read-only filesystem
        raise _os_error_to_user(exc, final) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600; artifacts get the usual 0666 & ~umask like any new file.
        os.chmod(tmp, 0o666 & ~_current_umask())
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _os_error_to_user(exc, final) from exc
    except FcnEdgeError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        if _disk_full(final.parent):
            raise FcnEdgeError(_no_space_message(final)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    if "r" in mode or "a" in mode:
        raise ValueError("atomic_open is for writing whole files ('w' or 'wb')")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and move the result over ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so a 500 MB model does not load at once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_file(path: str | os.PathLike, what: str = "file",
                 error: type[FcnEdgeError] = FcnEdgeError) -> Path:
    """Return ``path`` as a Path if it is a non-empty regular file, else ``error``."""
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    if path.is_dir():
        raise error(f"{what} {path} is a folder, not a file")
    if path.stat().st_size == 0:
        raise error(f"{what} {path} is empty (0 bytes)")
    return path


def is_temporary_name(name: str) -> bool:
    """True for the names :func:`atomic_path` gives its temporary files."""
    return name.startswith(_TMP_PREFIX)


def _writer_pid(name: str) -> int | None:
    """The process id in ``.fcn-edge-tmp-<pid>-...`` (None for older or other temporary names)."""
    head = name[len(_TMP_PREFIX):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or we cannot tell: keep the file)
    return True


def stale_temporaries(folder: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """Temporary files in ``folder`` left behind by interrupted writes (see the module docstring)."""
    folder = Path(folder)
    current = time.time() if now is None else now
    stale = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not is_temporary_name(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = current - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        pid = _writer_pid(entry.name)
        dead_writer = pid is not None and pid != os.getpid() and not _process_running(pid)
        if age >= STALE_ANY_S or (dead_writer and age >= STALE_DEAD_WRITER_S):
            stale.append(Path(entry.path))
    return stale


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete :func:`stale_temporaries` of ``folder``; returns what was removed (best effort, never raises)."""
    removed = []
    for path in stale_temporaries(folder):
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    if removed:
        logging.getLogger("fcn_edge").info("removed %d temporary file(s) left in %s by an interrupted write",
                                           len(removed), folder)
    return removed


def remove_stale_temporary_folders(folder: str | os.PathLike, *, suffix: str = "",
                                   now: float | None = None) -> list[Path]:
    """Delete temporary *folders* (``.fcn-edge-tmp-<pid>-*<suffix>``) whose writer died; best effort.

    Some artifacts are folders written whole and renamed into place at the end (a rosbag2
    recording).  A writer killed with -9 leaves its hidden folder behind; the next writer
    into the same place removes those whose process is gone and that have not changed for
    :data:`STALE_DEAD_WRITER_S` seconds (this user's folders only, never links).
    """
    def writer(name: str) -> int | None:
        return _writer_pid(name) if is_temporary_name(name) and name.endswith(suffix) else None

    return _remove_dead_writers_folders(Path(folder), writer, now, "unfinished folder(s) left by killed runs")


def _remove_dead_writers_folders(folder: Path, writer_pid: Callable[[str], int | None], now: float | None,
                                 what: str) -> list[Path]:
    """Remove the folders in ``folder`` whose name gives a writer pid (``writer_pid``) that is not running and
    that nobody touched for :data:`STALE_DEAD_WRITER_S` seconds; this user's real folders only."""
    current = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = writer_pid(entry.name)
        if pid is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or info.st_uid != os.getuid():
                continue
        except OSError:
            continue
        if pid == os.getpid() or _process_running(pid) or current - info.st_mtime < STALE_DEAD_WRITER_S:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    if removed:
        logging.getLogger("fcn_edge").info("removed %d %s in %s", len(removed), what, folder)
    return removed


SCRATCH_PREFIX = "fcn-edge-"
_SCRATCH_NAME = re.compile(r"fcn-edge-[a-z0-9]+-(\d+)-")


def make_scratch_dir(kind: str, folder: str | os.PathLike | None = None) -> Path:
    """A private working folder ``fcn-edge-<kind>-<pid>-XXXX`` in ``folder`` (default: the system's temp folder).

    Calibration and engine builds keep copies of the model there (hundreds of MB at full
    size).  A run killed with -9 cannot delete its own, so each new one first removes
    those whose writer is no longer running and that have not changed for
    :data:`STALE_DEAD_WRITER_S` seconds (only folders of this user, never links).
    """
    remove_stale_scratch(folder)
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{kind}-{os.getpid()}-", dir=folder))


@contextlib.contextmanager
def scratch_directory(kind: str, folder: str | os.PathLike | None = None) -> Iterator[Path]:
    """:func:`make_scratch_dir`, removed with everything in it when the block ends."""
    path = make_scratch_dir(kind, folder)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_scratch(folder: str | os.PathLike | None = None, *, now: float | None = None) -> list[Path]:
    """Delete scratch folders of dead fcn-edge processes (see :func:`make_scratch_dir`); best effort."""
    def writer(name: str) -> int | None:
        match = _SCRATCH_NAME.match(name)
        return int(match.group(1)) if match else None

    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    return _remove_dead_writers_folders(folder, writer, now, "working folder(s) of interrupted fcn-edge runs")


def _disk_full(folder: Path) -> bool:
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return stats.f_bavail * stats.f_frsize < _DISK_FULL_BYTES


def _no_space_message(final: Path) -> str:
    return f"no space left on the device while writing {final}; the previous file (if any) is intact"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (a crash after it cannot bring back the old name)."""
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_error_to_user(exc: OSError, final: Path) -> FcnEdgeError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FcnEdgeError(_no_space_message(final))
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FcnEdgeError(f"permission denied while writing {final}: {exc.strerror}")
    return FcnEdgeError(f"could not write {final}: {exc.strerror or exc}")
