"""Atomic file writes and small file helpers.

A crash, a kill -9 or a full disk while writing a checkpoint, ONNX file or engine must
never leave a half-written file under the final name nor destroy the previous one.  So
everything is written to a temporary file in the destination folder, flushed and
fsynced, then renamed over the target (rename is atomic within one filesystem).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from fcn_edge.errors import FcnEdgeError

_TMP_PREFIX = ".fcn-edge-tmp-"


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
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; artifacts get the usual 0666 & ~umask like any new file.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _os_error_to_user(exc, final) from exc
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


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_error_to_user(exc: OSError, final: Path) -> FcnEdgeError:
    if exc.errno == errno.ENOSPC:
        return FcnEdgeError(f"no space left on the device while writing {final}; the previous file (if any) is intact")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FcnEdgeError(f"permission denied while writing {final}: {exc.strerror}")
    return FcnEdgeError(f"could not write {final}: {exc.strerror or exc}")
