"""User-facing errors.

Every problem a user can cause or fix (a bad file, a missing package, a wrong option)
is raised as :class:`FcnEdgeError` with one sentence that names the file or value and
says what to do.  The CLI prints that sentence and exits non-zero; it never shows a
traceback from deep inside a library for such errors.
"""

from __future__ import annotations


class FcnEdgeError(Exception):
    """An error whose message is meant for the user, printed as one line by the CLI."""

    exit_code = 2


class MissingDependencyError(FcnEdgeError):
    """An optional package (torch, onnxruntime, tensorrt, ...) is needed but absent."""

    exit_code = 3


class ArtifactError(FcnEdgeError):
    """A checkpoint, ONNX file, engine or sidecar is missing, corrupt or mismatched."""


class DataError(FcnEdgeError):
    """An image, mask, list file or dataset folder cannot be used."""


class SourceError(FcnEdgeError):
    """A camera/video/stream source string is malformed or cannot be opened."""
