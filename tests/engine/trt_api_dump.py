"""Dump the API of the importable ``tensorrt_bindings`` package as JSON on stdout.

Run by tests/engine/real_trt.py in a subprocess whose PYTHONPATH holds one unpacked
binding wheel and whose LD_LIBRARY_PATH holds stub TensorRT libraries.  Reads names,
property descriptors, pybind11 docstring signatures and enum members; calls nothing.

Output: ``{"version", "module": {name: kind}, "classes": {qualname: {"bases", "members",
"init"}}, "enums": {qualname: {member: value}}}`` where a member is ``{"kind":
"method"|"static"|"property"|"readonly"|"class"|"value", "signatures": [[param, ...], ...]}``
and a param is ``{"name", "default": bool, "keyword": bool, "star": ""|"*"|"**"}``.
"""

from __future__ import annotations

import json
import re
import sys


def split_top_level(text: str) -> list[str]:
    """Split a parameter list on the commas outside brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def parse_params(inside: str) -> list[dict]:
    """pybind11 ``self: X, name: T = default, *args`` -> param records (``self`` dropped)."""
    params, keyword = [], True
    raw = split_top_level(inside)
    if "/" in raw:  # positional-only marker
        cut = raw.index("/")
        raw = [p for p in raw if p != "/"]
        positional_only = set(range(cut))
    else:
        positional_only = set()
    for index, part in enumerate(raw):
        if part == "*":
            continue
        name = re.split(r"[:=]", part, 1)[0].strip()
        star = "**" if name.startswith("**") else ("*" if name.startswith("*") else "")
        name = name.lstrip("*")
        if index == 0 and name == "self":
            continue
        default = bool(re.search(r"=(?![=])", part.split(":", 1)[-1] if ":" in part else part))
        params.append({"name": name, "default": default, "star": star,
                       "keyword": keyword and index not in positional_only and not re.fullmatch(r"arg\d+", name)})
    return params


def signatures(name: str, doc: str | None) -> list[list[dict]]:
    """Every overload's parameters from a pybind11 docstring (empty if it has none)."""
    found = []
    for line in (doc or "").splitlines():
        match = re.match(r"\s*(?:\d+\.\s+)?" + re.escape(name) + r"\((.*)\)(?:\s*->.*)?$", line)
        if not match:
            continue
        inside = _balanced(match.group(1))
        if inside == "*args, **kwargs" and "Overloaded function" in (doc or ""):
            continue
        found.append(parse_params(inside))
    return found


def _balanced(text: str) -> str:
    """The text up to the ``)`` that closes the signature's ``(``."""
    depth = 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                return text[:index]
            depth -= 1
    return text


def member_kind(cls: type, name: str) -> tuple[str, object]:
    raw = None
    for klass in cls.__mro__:
        if name in vars(klass):
            raw = vars(klass)[name]
            break
    if isinstance(raw, property):
        return ("property" if raw.fset is not None else "readonly"), raw
    if isinstance(raw, staticmethod) or type(raw).__name__ == "builtin_function_or_method":
        return "static", raw
    if isinstance(raw, type):
        return "class", raw
    if callable(raw) and not isinstance(raw, type(cls)) and not hasattr(raw, "__members__"):
        return "method", raw
    return "value", raw


def is_enum(obj: object) -> bool:
    return isinstance(obj, type) and isinstance(getattr(obj, "__members__", None), dict)


def dump_class(qualname: str, cls: type, out: dict) -> None:
    if is_enum(cls):
        out["enums"][qualname] = {str(k): int(v) for k, v in cls.__members__.items()}
        return
    members = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        kind, raw = member_kind(cls, name)
        entry: dict = {"kind": kind}
        if kind in ("method", "static"):
            entry["signatures"] = signatures(name, getattr(getattr(cls, name), "__doc__", None))
        elif kind == "class":
            dump_class(f"{qualname}.{name}", raw, out)  # type: ignore[arg-type]
        members[name] = entry
    init = getattr(cls, "__init__", None)
    out["classes"][qualname] = {
        "bases": [b.__name__ for b in cls.__mro__[1:] if b.__module__.startswith("tensorrt")],
        "members": members,
        "init": signatures("__init__", getattr(init, "__doc__", None)),
    }


def main() -> None:
    import tensorrt_bindings as trt

    out: dict = {"version": trt.__version__, "module": {}, "classes": {}, "enums": {}}
    for name in dir(trt):
        if name.startswith("_"):
            continue
        obj = getattr(trt, name)
        if isinstance(obj, type):
            out["module"][name] = "enum" if is_enum(obj) else "class"
            dump_class(name, obj, out)
        elif callable(obj):
            out["module"][name] = "function"
        elif not isinstance(obj, type(sys)):
            out["module"][name] = "value"
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
