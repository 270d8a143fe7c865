"""--cache-dir: hits when everything matches, misses when anything differs or the entry is broken."""

from __future__ import annotations

from fcn_edge.engine.cache import EngineCache, cache_key, cache_key_fields
from fcn_edge.artifacts.gpu import GpuInfo
from fcn_edge.engine.options import BuildOptions
from fcn_edge.engine.plan import resolve_build_plan
from fcn_edge.artifacts.sidecar import make_sidecar, sidecar_path_for, write_engine_and_sidecar
from fcn_edge.artifacts.trt_versions import parse_trt_version
from tests.engine.conftest import make_facts

ORIN = GpuInfo("Orin", (8, 7), integrated=True)
FACTS = make_facts()


def key_for(onnx_sha="a" * 64, trt="10.3.0", gpu=ORIN, **options):
    plan = resolve_build_plan(trt, BuildOptions(**options), FACTS)
    return cache_key(cache_key_fields(onnx_sha256=onnx_sha, trt_version=parse_trt_version(trt), gpu=gpu, plan=plan))


def store(cache, tmp_path, key, payload=b"engine-bytes" * 20):
    built = tmp_path / "built" / "m.fp16.engine"
    built.parent.mkdir(exist_ok=True)
    side = make_sidecar(engine_bytes=payload, engine_name=built.name, trt_version="10.3.0", gpu=ORIN, precision="fp16",
                        io={"inputs": [], "outputs": []}, source_name="m.onnx", source_sha256="a" * 64, source_opset=17,
                        build={"cache_key": key}, version_compatible=False, exclude_lean_runtime=False,
                        hardware_compat="none", dla_core=None, gpu_fallback=False, model=None, export=None)
    write_engine_and_sidecar(built, payload, side)
    return cache.store(key, built)


def test_key_changes_with_every_input():
    base = key_for()
    assert base == key_for()
    for other in (key_for(onnx_sha="c" * 64), key_for(trt="10.3.0.30"), key_for(gpu=GpuInfo("Orin", (8, 6), True)),
                  key_for(gpu=GpuInfo("Xavier", (8, 7), True)), key_for(precision="fp32"), key_for(workspace_mib=2048),
                  key_for(version_compatible=True), key_for(hardware_compat="ampere+")):
        assert other != base
    # the timing cache changes build time, not the engine: same key
    assert key_for(timing_cache="a.cache") == base


def test_hit_miss_and_broken_entries(tmp_path):
    cache = EngineCache(tmp_path / "cache")
    key = key_for()
    assert cache.lookup(key) is None
    cached = store(cache, tmp_path, key)
    hit = cache.lookup(key)
    assert hit is not None and hit.engine_path == cached and hit.sidecar.cache_key == key
    assert cache.lookup(key_for(precision="fp32")) is None
    # an entry whose engine no longer matches its sidecar (interrupted write) is a miss
    cached.write_bytes(b"truncated")
    assert cache.lookup(key) is None
    # an entry without a sidecar is a miss too
    store(cache, tmp_path, key)
    sidecar_path_for(cached).unlink()
    assert cache.lookup(key) is None
