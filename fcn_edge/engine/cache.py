"""``--cache-dir``: reuse an engine built from the same ONNX, TensorRT, GPU and options.

Engine builds take minutes (tens of minutes on a Jetson), so a CI job or a fleet
provisioning script should not rebuild what it already has.  The cache key is the
SHA-256 of a canonical JSON of everything that changes the engine:

* the source ONNX's SHA-256 (and of the calibration cache, when one is used),
* the TensorRT version (full, e.g. ``10.3.0.30``),
* the GPU name and compute capability,
* the resolved build plan (:meth:`BuildPlan.cache_fields`: precision, flags, profile
  shapes, DLA, compatibility, ONNX transformations) and the fcn-edge version (which
  owns the transformations).

The timing cache is not part of the key: it changes how long a build takes, not
what a valid engine is.  An entry is ``DIR/<key[:32]>/<name>.engine`` plus its
sidecar; it is a hit only if the sidecar names the same key *and* the engine's
SHA-256 matches the sidecar (a half-written or tampered entry is a miss).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_edge import __version__
from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.engine.plan import BuildPlan
from fcn_edge.artifacts.sidecar import EngineSidecar, copy_engine_pair, read_sidecar, sha256_bytes
from fcn_edge.artifacts.trt_versions import TrtVersion
from fcn_edge.errors import FcnEdgeError

log = logging.getLogger(__name__)


def cache_key_fields(*, onnx_sha256: str, trt_version: TrtVersion, gpu: GpuInfo, plan: BuildPlan,
                     calib_cache_sha256: str | None = None, calib_source: str | None = None) -> dict[str, Any]:
    """The fields hashed into the key (also recorded in the sidecar for humans)."""
    return {
        "onnx_sha256": onnx_sha256,
        "tensorrt": str(trt_version),
        "gpu": {"name": gpu.name, "compute_capability": gpu.sm},
        "plan": plan.cache_fields(),
        "calib_cache_sha256": calib_cache_sha256,
        "calib_source": calib_source,
        "fcn_edge_version": __version__,
    }


def cache_key(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class CacheHit:
    engine_path: Path
    sidecar: EngineSidecar


class EngineCache:
    """A folder of engines keyed by :func:`cache_key`."""

    def __init__(self, folder: "str | Path") -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise FcnEdgeError(f"--cache-dir {self.folder} is a file, not a folder")

    def entry_dir(self, key: str) -> Path:
        return self.folder / key[:32]

    def lookup(self, key: str) -> CacheHit | None:
        """The cached engine for ``key``, or None (a broken entry is a miss, with a warning)."""
        folder = self.entry_dir(key)
        if not folder.is_dir():
            return None
        for engine in sorted(folder.glob("*.engine")):
            try:
                sidecar = read_sidecar(engine)
            except FcnEdgeError as exc:
                log.warning("ignoring cache entry %s: %s", engine, exc)
                continue
            if sidecar.cache_key != key:
                continue
            data = engine.read_bytes()
            if len(data) != sidecar.engine_size or sha256_bytes(data) != sidecar.engine_sha256:
                log.warning("ignoring cache entry %s: the engine does not match its sidecar (interrupted write?)", engine)
                continue
            return CacheHit(engine, sidecar)
        return None

    def store(self, key: str, engine_path: Path) -> Path:
        """Copy a freshly built engine pair into the cache; returns the cached engine path."""
        folder = self.entry_dir(key)
        folder.mkdir(parents=True, exist_ok=True)
        return copy_engine_pair(engine_path, folder / engine_path.name)
