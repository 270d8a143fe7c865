"""A strict, recording STAND-IN for the ``tensorrt`` module, generated from TensorRT's real API.

Not TensorRT: it builds nothing (the "engine" is a labelled byte string) and computes
nothing unless a test gives it a function to run.  What it does is refuse anything the
real bindings of that TensorRT version would refuse *by name*:

* a module name, class attribute, instance attribute or enum member the real bindings
  of that version lack -> :class:`ApiMismatch` (an ``AttributeError``, as pybind11 raises);
* assigning a property that is read-only or absent -> :class:`ApiMismatch`;
* a call whose positional count or keyword names match none of the real pybind11
  overloads -> :class:`SignatureMismatch` (a ``TypeError``, as pybind11 raises);
* a constructor the real class does not offer from Python (``IBuilderConfig()``);
* a Python subclass (logger, progress monitor, calibrator) defining a method its real
  base class lacks (TensorRT would never call it).

Where the facts of a version cannot be had (no network for the first download, no C
compiler), :func:`make_recording_tensorrt` skips the calling test with the reason.

The per-version facts (names, property writability, signatures, enum members) are read
from NVIDIA's genuine binding wheels by tests/engine/real_trt.py (8.6 to 11.4) and, for
8.5, from the JSON derived from NVIDIA's binding source (tests/engine/data/).  The
behaviour behind each name (what ``create_network`` returns, how ``build_serialized_network``
drives a progress monitor and a calibrator) is written here by hand and is the part that
is NOT TensorRT.  Every call and property assignment is recorded in ``trt.calls`` as a
:class:`Call`.
"""

from __future__ import annotations

import enum
import inspect
import itertools
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from tests.engine.real_trt import Unavailable, api_facts, family_of

FAKE_ENGINE_PREFIX = b"TEST-DOUBLE-ENGINE (not a TensorRT engine) "
TIMING_CACHE_BYTES = b"timing-cache-from-the-test-double"


class BindingsMismatch(Exception):
    """fcn-edge used something the real TensorRT bindings of this version do not have."""


class ApiMismatch(BindingsMismatch, AttributeError):
    """A name or writable property the real bindings lack."""


class SignatureMismatch(BindingsMismatch, TypeError):
    """Arguments no overload of the real bindings accepts."""


@dataclass
class Call:
    """One recorded use of the API: ``kind`` is ``call`` (method), ``set`` (property) or ``new`` (constructor)."""

    seq: int
    owner: str
    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    kind: str = "call"
    target: Any = None  # the stand-in object the call was made on

    def __str__(self) -> str:
        if self.kind == "set":
            return f"{self.owner}.{self.name} = {self.args[0]!r}"
        params = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.owner}.{self.name}({', '.join(params)})"


# --------------------------------------------------------------------------- signatures
def accepts(signature: "list[dict] | None", args: tuple, kwargs: dict) -> bool:
    """Would a pybind11 overload with these parameters take ``args`` and ``kwargs``?

    ``None`` is an overload known only from the source with no named arguments: any
    positional arguments, no keywords.
    """
    if signature is None:
        return not kwargs
    plain = [p for p in signature if not p["star"]]
    varargs = any(p["star"] == "*" for p in signature)
    varkw = any(p["star"] == "**" for p in signature)
    if len(args) > len(plain) and not varargs:
        return False
    filled = {p["name"] for p in plain[:len(args)]}
    by_name = {p["name"]: p for p in plain}
    for key in kwargs:
        param = by_name.get(key)
        if param is None or not param["keyword"] or key in filled:
            if not varkw:
                return False
        filled.add(key)
    return all(p["default"] or p["name"] in filled for p in plain)


def _render(signature: "list[dict] | None") -> str:
    if signature is None:
        return "(positional arguments only)"
    return "(" + ", ".join(p["star"] + p["name"] + ("=..." if p["default"] else "") for p in signature) + ")"


# --------------------------------------------------------------------------- enums
class _StrictEnumMeta(enum.EnumMeta):
    def __getattr__(cls, name: str) -> Any:
        members = cls.__dict__.get("_member_map_", {})
        if name in members:
            return members[name]
        if name.startswith("_"):
            raise AttributeError(name)
        raise ApiMismatch(f"TensorRT {cls.__dict__.get('_trt_version_', '?')}: {cls.__qualname__}.{name} does not exist "
                          f"(members: {', '.join(members)})")


class _StrictIntEnum(enum.IntEnum, metaclass=_StrictEnumMeta):
    """Base of the stand-in enums: an unknown member raises :class:`ApiMismatch`."""


def _make_enum(qualname: str, members: dict[str, int], version: str) -> type:
    """An IntEnum with the real members and numbers (aliases, two names for one number, stay aliases)."""
    result = _StrictIntEnum(qualname.rsplit(".", 1)[-1], sorted(members.items(), key=lambda kv: (kv[1], kv[0])))
    result.__qualname__ = qualname
    type.__setattr__(result, "_trt_version_", version)
    return result


# --------------------------------------------------------------------------- classes
class _StrictMeta(type):
    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise ApiMismatch(f"TensorRT {cls._trt_version}: {cls._trt_name}.{name} does not exist")


class StrictObject(metaclass=_StrictMeta):
    """Base of every stand-in class; see the module docstring for what it refuses."""

    _trt_name = "object"
    _trt_version = "?"
    _trt_members: dict[str, dict] = {}
    _trt_init: list = []
    _trt_module: Any = None
    _standin = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_standin"):
            return
        # A Python subclass written by fcn-edge: every method it overrides must exist on the real base
        # and take the arguments TensorRT passes (the real signature's parameters, positionally).
        for name, value in cls.__dict__.items():
            if name.startswith("_") or not callable(value):
                continue
            if name not in cls._trt_members:
                raise ApiMismatch(f"TensorRT {cls._trt_version}: {cls._trt_name} has no method {name!r} to override "
                                  f"(TensorRT would never call {cls.__name__}.{name})")
            known = [s for s in cls._trt_members[name].get("signatures", []) if s is not None]
            if known and not any(_takes(value, len(s)) for s in known):
                raise SignatureMismatch(f"TensorRT {cls._trt_version}: TensorRT calls {cls._trt_name}.{name}"
                                        + " | ".join(_render(s) for s in known) + f", which {cls.__name__}.{name} cannot take")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        standin = _standin_class(cls)
        if not standin._trt_init:
            raise ApiMismatch(f"TensorRT {cls._trt_version}: {standin._trt_name} cannot be constructed from Python")
        _check_call(standin, "__init__", standin._trt_init, args, kwargs)
        _init_state(self)
        _record(self, standin._trt_name, "__init__", args, kwargs, "new")
        construct = getattr(standin, "_construct", None)
        if construct is not None:
            construct(self, *args, **kwargs)

    @classmethod
    def _make(cls, **state: Any) -> Any:
        """An instance made by TensorRT itself (returned from a call), with behaviour state."""
        obj = object.__new__(cls)
        _init_state(obj)
        obj._state.update(state)
        return obj

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_"):
            return object.__getattribute__(self, name)
        cls = type(self)
        if _defined_by_user(cls, name) or (not cls.__dict__.get("_standin") and name in object.__getattribute__(self, "__dict__")):
            return object.__getattribute__(self, name)
        member = cls._trt_members.get(name)
        if member is None:
            raise ApiMismatch(f"TensorRT {cls._trt_version}: {_standin_class(cls)._trt_name}.{name} does not exist")
        kind = member["kind"]
        if kind in ("property", "readonly"):
            props = object.__getattribute__(self, "_props")
            if name in props:
                return props[name]
            raise NotImplementedError(f"the stand-in gives no value for {cls._trt_name}.{name}; add one in trt_double.py")
        if kind in ("method", "static"):
            behaviour = _behaviour(cls, name)
            standin = _standin_class(cls)

            def checked(*args: Any, **kwargs: Any) -> Any:
                _check_call(standin, name, member.get("signatures", []), args, kwargs)
                _record(self, standin._trt_name, name, args, kwargs, "call")
                return behaviour(self, *args, **kwargs)

            return checked
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        member = cls._trt_members.get(name)
        if member is None and not cls.__dict__.get("_standin"):
            object.__setattr__(self, name, value)  # Python subclasses of pybind11 classes take new attributes
            return
        where = f"TensorRT {cls._trt_version}: {_standin_class(cls)._trt_name}.{name}"
        if member is None:
            raise ApiMismatch(f"{where} does not exist")
        if member["kind"] != "property":
            raise ApiMismatch(f"{where} is {'read-only' if member['kind'] == 'readonly' else 'a ' + member['kind']}, not a "
                              "writable property")
        _record(self, _standin_class(cls)._trt_name, name, (value,), {}, "set")
        self._props[name] = value
        hook = getattr(_standin_class(cls), "_on_set", None)
        if hook is not None:
            hook(self, name, value)


def _takes(function: Callable[..., Any], count: int) -> bool:
    """Can ``function(self, a1, ..., a_count)`` be called?"""
    try:
        inspect.signature(function).bind(None, *([None] * count))
    except TypeError:
        return False
    return True


def _init_state(obj: Any) -> None:
    if "_props" not in obj.__dict__:
        object.__setattr__(obj, "_props", dict(getattr(type(obj), "_default_props", {})))
        object.__setattr__(obj, "_state", {})


def _standin_class(cls: type) -> Any:
    for klass in cls.__mro__:
        if klass.__dict__.get("_standin"):
            return klass
    return cls


def _defined_by_user(cls: type, name: str) -> bool:
    """Is ``name`` defined by a Python subclass fcn-edge wrote (not by the stand-in)?"""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return not klass.__dict__.get("_standin") and not issubclass(klass, _Behaviour)
        if klass.__dict__.get("_standin"):
            return False
    return False


def _behaviour(cls: type, name: str) -> Callable[..., Any]:
    for klass in cls.__mro__:
        if isinstance(klass, type) and issubclass(klass, _Behaviour) and name in klass.__dict__:
            return klass.__dict__[name]
    raise NotImplementedError(f"the stand-in has no behaviour for {_standin_class(cls)._trt_name}.{name}; add it to trt_double.py")


def _check_call(standin: Any, name: str, signatures: list, args: tuple, kwargs: dict) -> None:
    if any(accepts(sig, args, kwargs) for sig in signatures):
        return
    given = ", ".join([f"<{type(a).__name__}>" for a in args] + [f"{k}=" for k in kwargs])
    raise SignatureMismatch(f"TensorRT {standin._trt_version}: {standin._trt_name}.{name}({given}) matches no signature "
                            f"of the real bindings: " + " | ".join(_render(s) for s in signatures))


def _record(obj: Any, owner: str, name: str, args: tuple, kwargs: dict, kind: str) -> None:
    module = type(obj)._trt_module
    module.calls.append(Call(next(module._seq), owner, name, tuple(args), dict(kwargs), kind, obj))


# --------------------------------------------------------------------------- behaviour
# One mixin per real class the code uses.  Method names are the real ones; the strict base
# checks every access against the facts before any of these run.
class _Behaviour:
    _behaviour = True


class BuilderBehaviour(_Behaviour):
    def _construct(self, logger: Any) -> None:
        trt = type(self)._trt_module
        assert isinstance(logger, trt.ILogger), "Builder(logger) needs a trt.ILogger"
        self._props["num_DLA_cores"] = trt._options["num_dla_cores"]
        trt.last_builder = self

    def create_network(self, flags: int = 0) -> Any:
        return type(self)._trt_module.INetworkDefinition._make(flags=flags)

    def create_builder_config(self) -> Any:
        config = type(self)._trt_module.IBuilderConfig._make()
        self._state["config"] = config
        return config

    def create_optimization_profile(self) -> Any:
        return type(self)._trt_module.IOptimizationProfile._make(shapes={})

    def build_serialized_network(self, network: Any, config: Any, *rest: Any) -> Any:
        trt = type(self)._trt_module
        monitor = config._props.get("progress_monitor")
        if monitor is not None:
            monitor.phase_start("Building engine", None, 3)
            monitor.phase_start("Tactic timing", "Building engine", 2)
            for step in range(3):
                assert monitor.step_complete("Building engine", step) is True
            monitor.phase_finish("Tactic timing")
            monitor.phase_finish("Building engine")
        calibrator = config._props.get("int8_calibrator")
        if calibrator is not None:
            trt.calibration_cache_seen = calibrator.read_calibration_cache()
            assert calibrator.get_batch(["frames"]) is None
        return trt.IHostMemory._make(data=FAKE_ENGINE_PREFIX + f"TensorRT {trt.__version__}".encode())


class HostMemoryBehaviour(_Behaviour):
    def __bytes__(self) -> bytes:
        return self._state["data"]


class ParserBehaviour(_Behaviour):
    _default_props = {"num_errors": 0}

    def parse_from_file(self, model: str) -> bool:
        trt = type(self)._trt_module
        trt.parsed_path = model
        errors = trt._options["parse_errors"]
        self._props["num_errors"] = len(errors)
        return not errors

    def get_error(self, index: int) -> Any:
        return type(self)._trt_module.ParserError._make(desc=type(self)._trt_module._options["parse_errors"][index])


class ConfigBehaviour(_Behaviour):
    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._state.setdefault("pools", {})[pool] = pool_size

    def set_flag(self, flag: Any) -> None:
        self._state.setdefault("flags", []).append(flag)

    def add_optimization_profile(self, profile: Any) -> int:
        self._state.setdefault("profiles", []).append(profile)
        return len(self._state["profiles"]) - 1

    def set_calibration_profile(self, profile: Any) -> bool:
        return True

    def create_timing_cache(self, serialized_timing_cache: bytes) -> Any:
        self._state["timing_input"] = bytes(serialized_timing_cache)
        return type(self)._trt_module.ITimingCache._make()

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        self._state["timing_cache"] = cache
        return True

    def get_timing_cache(self) -> Any:
        return self._state.get("timing_cache")


class TimingCacheBehaviour(_Behaviour):
    def serialize(self) -> Any:
        return type(self)._trt_module.IHostMemory._make(data=TIMING_CACHE_BYTES)


class ProfileBehaviour(_Behaviour):
    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 (TensorRT's names)
        self._state["shapes"][input] = (tuple(min), tuple(opt), tuple(max))


class RuntimeBehaviour(_Behaviour):
    _default_props = {"engine_host_code_allowed": False, "DLA_core": -1}

    def _construct(self, logger: Any) -> None:
        assert isinstance(logger, type(self)._trt_module.ILogger), "Runtime(logger) needs a trt.ILogger"

    def load_runtime(self, path: str) -> Any:
        lean = type(self)._trt_module.Runtime._make()
        lean._state["loaded_from"] = path
        return lean

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Any:
        trt = type(self)._trt_module
        data = bytes(serialized_engine)
        if trt._options["deserialize_fails"]:
            return None
        if trt._options["check_engine_prefix"]:
            assert data.startswith(FAKE_ENGINE_PREFIX), "not an engine made by this stand-in"
        trt.runtime_settings = dict(self._props, **self._state)
        engine = trt.ICudaEngine._make(io=trt._options["io"])
        engine._props["num_io_tensors"] = len(trt._options["io"])
        for name in ("device_memory_size", "device_memory_size_v2"):
            engine._props[name] = 1 << 20
        return engine


class EngineBehaviour(_Behaviour):
    def _tensor(self, name: str) -> tuple:
        return next(t for t in self._state["io"] if t[0] == name)

    def get_tensor_name(self, index: int) -> str:
        return self._state["io"][index][0]

    def get_tensor_mode(self, name: str) -> Any:
        return type(self)._trt_module.TensorIOMode[self._tensor(name)[1]]

    def get_tensor_shape(self, name: str) -> Any:
        return tuple(self._tensor(name)[2])

    def get_tensor_dtype(self, name: str) -> Any:
        return type(self)._trt_module.DataType[self._tensor(name)[3]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
        shape = self._tensor(name)[2]
        ranges = type(self)._trt_module._options["profile_ranges"]
        return [tuple(r if d < 0 else d for d, r in zip(shape, ranges[i])) for i in range(3)]

    def create_execution_context(self, *args: Any) -> Any:
        return type(self)._trt_module.IExecutionContext._make(engine=self, shapes={}, addresses={})


class ContextBehaviour(_Behaviour):
    def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
        self._state["profile"] = profile_index
        return True

    def set_input_shape(self, name: str, shape: Any) -> bool:
        engine = self._state["engine"]
        low, _, high = engine.get_tensor_profile_shape(name, self._state.get("profile", 0))
        if not all(a <= d <= b for d, a, b in zip(shape, low, high)):
            return False
        self._state["shapes"][name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> Any:
        engine = self._state["engine"]
        tensor = engine._tensor(name)
        inputs = [t for t in engine._state["io"] if t[1] == "INPUT"]
        batch = self._state["shapes"].get(inputs[0][0], inputs[0][2])[0] if inputs else 1
        return tuple(batch if (i == 0 and d < 0) else d for i, d in enumerate(tensor[2]))

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._state["addresses"][name] = memory
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        run = type(self)._trt_module._options["execute"]
        if run is None:
            raise NotImplementedError("this stand-in was made without an execute function")
        return run(self._state, stream_handle)


class ParserErrorBehaviour(_Behaviour):
    def desc(self) -> str:
        return self._state.get("desc", "")


BEHAVIOURS: dict[str, type] = {
    "Builder": BuilderBehaviour, "IHostMemory": HostMemoryBehaviour, "OnnxParser": ParserBehaviour,
    "IBuilderConfig": ConfigBehaviour, "ITimingCache": TimingCacheBehaviour, "IOptimizationProfile": ProfileBehaviour,
    "Runtime": RuntimeBehaviour, "ICudaEngine": EngineBehaviour, "IExecutionContext": ContextBehaviour,
    "ParserError": ParserErrorBehaviour,
}


class _StrictModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ApiMismatch(f"TensorRT {self.__dict__.get('__version__')}: the tensorrt module has no {name}")


DEFAULT_IO = [("frames", "INPUT", (1, 64, 64, 3), "UINT8"), ("labels", "OUTPUT", (1, 64, 64), "UINT8")]


def make_recording_tensorrt(version: str, *, num_dla_cores: int = 2, io: "list[tuple] | None" = None,
                            family: str | None = None, execute: Callable[..., bool] | None = None,
                            profile_ranges: tuple = ((1, 64, 64, 3), (2, 64, 64, 3), (4, 128, 128, 3)),
                            deserialize_fails: bool = False, check_engine_prefix: bool = True,
                            parse_errors: "tuple[str, ...]" = ()) -> types.ModuleType:
    """A strict stand-in for ``tensorrt`` ``version`` (facts of its API family, or of ``family``).

    ``io``: the engine's tensors as ``(name, "INPUT"|"OUTPUT", shape, DataType member)``;
    ``execute(context_state, stream_handle)``: what ``execute_async_v3`` does (runner tests);
    ``profile_ranges``: min/opt/max filling the dynamic dims of ``get_tensor_profile_shape``;
    ``parse_errors``: what the ONNX parser reports (it then fails).
    """
    family = family or family_of(version)
    try:
        facts = api_facts(family)
    except Unavailable as exc:
        pytest.skip(f"TensorRT {family}'s real Python API is not available here: {exc}")
    trt = _StrictModule("tensorrt")
    trt.__version__ = version
    trt.TRT_FAMILY = family
    trt.API_SOURCE = facts.get("source", "")
    trt.IS_TEST_DOUBLE = True
    trt.calls = []
    trt._seq = itertools.count()
    trt._options = {"num_dla_cores": num_dla_cores, "io": list(io or DEFAULT_IO), "execute": execute,
                    "profile_ranges": profile_ranges, "deserialize_fails": deserialize_fails,
                    "check_engine_prefix": check_engine_prefix, "parse_errors": tuple(parse_errors)}
    enums = {q: _make_enum(q, members, version) for q, members in facts["enums"].items()}
    for qual, value in enums.items():
        if "." not in qual:
            setattr(trt, qual, value)
    standins: dict[str, type] = {}

    def standin(qual: str) -> type:
        if qual not in standins:
            spec = facts["classes"][qual]
            namespace: dict[str, Any] = {"_standin": True, "_trt_name": qual, "_trt_version": version,
                                         "_trt_members": spec["members"], "_trt_init": spec["init"], "_trt_module": trt}
            for name, member in spec["members"].items():
                if member["kind"] == "class" and f"{qual}.{name}" in enums:
                    namespace[name] = enums[f"{qual}.{name}"]
            parent = [standin(b) for b in spec["bases"][:1] if b in facts["classes"]] or [StrictObject]
            behaviour = [BEHAVIOURS[qual]] if qual in BEHAVIOURS else []
            standins[qual] = _StrictMeta(qual, tuple(behaviour + parent), namespace)
        return standins[qual]

    for qual in facts["classes"]:
        if "." not in qual:
            setattr(trt, qual, standin(qual))
    # class-level values: Logger.WARNING etc. (the package's __init__ copies ILogger.Severity onto Logger)
    severity = enums.get("ILogger.Severity")
    if severity is not None and "Logger" in facts["classes"]:
        for name, member in facts["classes"]["Logger"]["members"].items():
            if member["kind"] == "value" and name in severity.__members__:
                type.__setattr__(trt.Logger, name, severity[name])
        return trt


def calls_named(trt: types.ModuleType, owner: str, name: str) -> list[Call]:
    """The recorded calls/assignments of ``owner.name`` in order."""
    return [c for c in trt.calls if c.owner == owner and c.name == name]
