"""Derive a TensorRT version's Python API from NVIDIA's pybind11 binding source.

TensorRT 8.5 (JetPack 5.1) has no binding wheel on PyPI, so its API facts cannot be read
from the real module as tests/engine/real_trt.py does for 8.6 to 11.4.  NVIDIA publishes
the binding source (github.com/NVIDIA/TensorRT, ``python/src/**/*.cpp``, tags 8.5.1 to
8.5.3); this script reads it and writes the same JSON the live dump writes:

* ``py::class_<T, Base...>(scope, "Name")`` / ``py::class_<...> var{scope, "Name"}`` and
  ``py::enum_<T>(scope, "Name")``: a class or enum (``scope`` a class variable: nested);
* ``.def("name", ..., "kw"_a, py::arg("kw") = x)``: a method and its keyword names (a def
  with no named arguments takes positional arguments only: signature ``null``, arity
  unknown); ``.def(py::init...)`` a constructor; ``.def_static``: a static method;
* ``.def_property`` (writable unless its setter is ``nullptr``), ``.def_readwrite``:
  writable properties; ``.def_property_readonly``, ``.def_readonly``: read-only;
* ``.value("MEMBER", ...)``: enum members, numbered in declaration order (the source
  gives C++ enumerators, not numbers); ``.export_values()`` copies them to the scope;
* ``m.attr("New") = m.attr("Old")``: a module alias; ``m.def("name")``: a module function;
* base classes come from ``py::class_``'s template arguments that are bound classes;
* one rule from the package's ``tensorrt/__init__.py``: ``Logger`` gets ``ILogger.Severity``'s
  members as class attributes.

Usage (a clone or mirror of NVIDIA/TensorRT)::

    python tests/engine/trt_api_from_source.py GITDIR TAG -o tests/engine/data/trt-8.5-api.json

What it cannot see and the live dump can: parameter types, positional arity of unnamed
arguments, enum numbers, names added at run time other than the Logger rule.  The
agreement with the real 8.6.1 and 10.3.0 wheels is measured by
tests/engine/test_trt_real_api.py::test_source_extractor_agrees_with_the_real_bindings.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

# Classes and enums fcn-edge's TensorRT code touches (what the committed JSON keeps).
USED = (
    "Builder", "IBuilderConfig", "INetworkDefinition", "OnnxParser", "ParserError", "IOptimizationProfile",
    "ITimingCache", "IHostMemory", "Runtime", "ICudaEngine", "IExecutionContext", "ILogger", "Logger",
    "ILogger.Severity", "IProgressMonitor", "IInt8Calibrator", "IInt8EntropyCalibrator2", "IInt8EntropyCalibrator",
    "IInt8MinMaxCalibrator", "BuilderFlag", "NetworkDefinitionCreationFlag", "MemoryPoolType", "DeviceType",
    "HardwareCompatibilityLevel", "EngineCapability", "TensorIOMode", "DataType", "ProfilingVerbosity",
)


# Preprocessor switches that are off in NVIDIA's wheels (blocks under them are dropped).
DISABLED_MACROS = {"ENABLE_INETWORK_SERIALIZE"}


def strip_comments(text: str) -> str:
    """C++ source without comments and preprocessor lines (string literals kept).

    Blocks under ``#if``/``#ifdef`` of a macro in :data:`DISABLED_MACROS` are dropped;
    every other branch is kept (the full ``tensorrt`` module is built with
    ``EXPORT_ALL_BINDINGS``; only the lean/dispatch modules leave those out).
    """
    text = re.sub(r'//[^\n]*|/\*.*?\*/|("(?:\\.|[^"\\])*")', lambda m: m.group(1) or " ", text, flags=re.S)
    kept, stack = [], []
    for line in text.split("\n"):
        directive = re.match(r"\s*#\s*(\w+)\s*(\w*)", line)
        if directive:
            word, name = directive.groups()
            if word in ("if", "ifdef", "ifndef"):
                stack.append(name in DISABLED_MACROS and word != "ifndef")
            elif word == "else" and stack:
                stack[-1] = False
            elif word == "endif" and stack:
                stack.pop()
            kept.append("")
            continue
        kept.append("" if any(stack) else line)
    return "\n".join(kept)


def strip_block_openers(statement: str) -> str:
    """Drop a function header or ``{``/``}`` before the statement proper (``void f(...) { py::class_...``)."""
    cut, i = 0, 0
    while i < len(statement):
        char = statement[i]
        if char == '"':
            i = _string_end(statement, i)
            continue
        if char == "(":
            i = _matching(statement, i) + 1
            continue
        if char in "{}":
            if re.match(r"\s*(auto\s+\w+\s*=\s*)?py::(class_|enum_)", statement[cut:i]):
                break
            cut = i + 1
        i += 1
    return statement[cut:]


def statements(text: str) -> list[str]:
    """Split on ``;`` outside parentheses and string literals (lambda bodies sit inside a call)."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            i = _string_end(text, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == ";" and depth == 0:
            out.append(text[start:i])
            start = i + 1
        i += 1
    return out


def _string_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text) and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return j + 1


def split_args(text: str) -> list[str]:
    """Top-level comma split of a call's argument text."""
    parts, depth, current, i = [], 0, [], 0
    while i < len(text):
        char = text[i]
        if char == '"':
            end = _string_end(text, i)
            current.append(text[i:end])
            i = end
            continue
        if char in "([{<":
            depth += 1
        elif char in ")]}>" and not (char == ">" and text[i - 1:i] == "-"):  # not a lambda's ->
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def calls(chain: str) -> list[tuple[str, str]]:
    """``.def(a, b).value(c)`` -> ``[("def", "a, b"), ("value", "c")]`` (top-level chain only)."""
    found, i = [], 0
    while True:
        match = re.compile(r"\s*\.\s*(\w+)\s*\(").match(chain, i)
        if not match:
            return found
        depth, j = 1, match.end()
        while j < len(chain) and depth:
            if chain[j] == '"':
                j = _string_end(chain, j)
                continue
            depth += {"(": 1, ")": -1}.get(chain[j], 0)
            j += 1
        found.append((match.group(1), chain[match.end():j - 1]))
        i = j


def _template_args(statement: str, start: int) -> tuple[list[str], int]:
    """The ``<...>`` after ``py::class_`` (nested angle brackets allowed) and the index after it."""
    depth, j = 0, start
    while j < len(statement):
        if statement[j] == "<":
            depth += 1
        elif statement[j] == ">":
            depth -= 1
            if depth == 0:
                return split_args(statement[start + 1:j]), j + 1
        j += 1
    return [], j


def _keyword_params(args: list[str]) -> list[dict] | None:
    params = []
    for arg in args:
        match = re.match(r'\s*(?:"(\w+)"_a|py::arg\s*\(\s*"(\w+)"\s*\))\s*(=)?', arg)
        if match:
            params.append({"name": match.group(1) or match.group(2), "default": bool(match.group(3)),
                           "keyword": True, "star": ""})
    return params or None


class Extractor:
    """Accumulates classes/enums over the binding files of one tag."""

    def __init__(self) -> None:
        self.classes: dict[str, dict] = {}
        self.enums: dict[str, dict[str, int]] = {}
        self.module: dict[str, str] = {}
        self.cpp_to_py: dict[str, str] = {}
        self.var_to_qual: dict[str, str] = {}
        self.pending_bases: dict[str, list[str]] = {}
        self.aliases: list[tuple[str, str]] = []

    def feed(self, text: str) -> None:
        for statement in statements(strip_comments(text)):
            self._statement(strip_block_openers(statement))

    def _statement(self, statement: str) -> None:
        head = re.match(r"\s*(?:auto\s+\w+\s*=\s*)?py::(class_|enum_)\s*<", statement)
        if head:
            targs, after = _template_args(statement, head.end() - 1)
            match = re.match(r'\s*(\w+)?\s*[({]\s*(\w+)\s*,\s*"(\w+)"', statement[after:])
            if not match:
                return
            var, scope, name = match.groups()
            qual = name if scope == "m" else f"{self.var_to_qual.get(scope, scope)}.{name}"
            cpp = re.sub(r"^(nvinfer1|nvonnxparser|nvcaffeparser1|nvuffparser)::", "", targs[0].strip()) if targs else name
            self.cpp_to_py[cpp] = qual
            if var:
                self.var_to_qual[var] = qual
            if head.group(1) == "enum_":
                self.enums.setdefault(qual, {})
            else:
                self.classes.setdefault(qual, {"bases": [], "members": {}, "init": []})
                self.pending_bases[qual] = [re.sub(r"^\w+::", "", t.strip()) for t in targs[1:]]
            if scope == "m":
                self.module[name] = "enum" if head.group(1) == "enum_" else "class"
            elif head.group(1) == "enum_" and scope in self.var_to_qual:
                self.classes[self.var_to_qual[scope]]["members"][name] = {"kind": "class"}
            # the chain starts after the constructor's closing bracket
            chain = statement[after + match.start():]
            close = _matching(chain, chain.index("(" if "(" in chain[:chain.find('"')] else "{"))
            self._chain(qual, head.group(1), scope, chain[close + 1:])
            return
        alias = re.match(r'\s*m\.attr\(\s*"(\w+)"\s*\)\s*=\s*m\.attr\(\s*"(\w+)"\s*\)', statement)
        if alias:
            self.aliases.append(alias.groups())
            return
        function = re.match(r'\s*m\s*\.\s*def\s*\(\s*"(\w+)"', statement)
        if function:
            self.module[function.group(1)] = "function"
            return
        match = re.match(r"\s*(\w+)\s*(?=\.)", statement)
        if match and match.group(1) in self.var_to_qual:
            qual = self.var_to_qual[match.group(1)]
            self._chain(qual, "enum_" if qual in self.enums else "class_", None, statement[match.end():])

    def _chain(self, qual: str, kind: str, scope: str | None, chain: str) -> None:
        for method, argtext in calls(chain):
            args = split_args(argtext)
            if kind == "enum_":
                if method == "value" and args:
                    members = self.enums[qual]
                    members[args[0].strip('"')] = len(members)
                elif method == "export_values" and scope in self.var_to_qual:
                    for member in self.enums[qual]:
                        self.classes[self.var_to_qual[scope]]["members"][member] = {"kind": "value"}
                continue
            entry = self.classes[qual]
            if method == "def" and args and args[0].startswith("py::init"):
                entry["init"].append(_keyword_params(args[1:]) or ([] if re.search(r"py::init\s*<\s*>|py::init\s*\(\s*\[\]\s*\(\s*\)", args[0]) else None))
            elif method in ("def", "def_static") and args and args[0].startswith('"') and not args[0].startswith('"_'):
                name = args[0].strip('"')
                member = entry["members"].setdefault(name, {"kind": "method" if method == "def" else "static",
                                                             "signatures": []})
                member.setdefault("signatures", []).append(_keyword_params(args[1:]))
            elif method in ("def_property", "def_readwrite") and args:
                writable = not (method == "def_property" and len(args) > 2 and args[2].strip() == "nullptr")
                entry["members"][args[0].strip('"')] = {"kind": "property" if writable else "readonly"}
            elif method in ("def_property_readonly", "def_readonly", "def_property_readonly_static") and args:
                entry["members"][args[0].strip('"')] = {"kind": "readonly"}

    def finish(self) -> dict:
        """Resolve base classes (inheriting their members), module aliases and the package __init__ rule."""
        for new, old in self.aliases:  # m.attr("ResizeMode") = m.attr("InterpolationMode")
            for table in (self.classes, self.enums):
                if old in table:
                    table[new] = table[old]
                    self.module[new] = self.module.get(old, "class")
        for qual, bases in self.pending_bases.items():
            self.classes[qual]["bases"] = [self.cpp_to_py[b] for b in bases if b in self.cpp_to_py
                                           and self.cpp_to_py[b] in self.classes]
        for qual in list(self.classes):
            for base in self._all_bases(qual):
                for name, member in self.classes[base]["members"].items():
                    self.classes[qual]["members"].setdefault(name, member)
        if "Logger" in self.classes and "ILogger.Severity" in self.enums:
            for member in self.enums["ILogger.Severity"]:
                self.classes["Logger"]["members"].setdefault(member, {"kind": "value"})
            self.classes["Logger"]["members"]["Severity"] = {"kind": "class"}
            self.enums["Logger.Severity"] = dict(self.enums["ILogger.Severity"])
        return {"module": self.module, "classes": self.classes, "enums": self.enums}

    def _all_bases(self, qual: str) -> list[str]:
        out = []
        for base in self.classes[qual]["bases"]:
            out += [base] + self._all_bases(base)
        return out


def _matching(text: str, open_index: int) -> int:
    pairs = {"(": ")", "{": "}"}
    opener, closer, depth, j = text[open_index], pairs[text[open_index]], 0, open_index
    while j < len(text):
        if text[j] == '"':
            j = _string_end(text, j)
            continue
        if text[j] == opener:
            depth += 1
        elif text[j] == closer:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return len(text) - 1


def source_files(git_dir: str, tag: str) -> dict[str, str]:
    """Every ``python/src/**/*.cpp`` of ``tag`` in a clone or bare mirror, by path."""
    names = subprocess.run(["git", "-C", git_dir, "ls-tree", "-r", "--name-only", tag, "--", "python/src"],
                           capture_output=True, text=True, check=True).stdout.split()
    return {name: subprocess.run(["git", "-C", git_dir, "show", f"{tag}:{name}"], capture_output=True, text=True,
                                 check=True).stdout for name in names if name.endswith(".cpp")}


def extract(files: dict[str, str]) -> dict:
    extractor = Extractor()
    for name in sorted(files):
        extractor.feed(files[name])
    return extractor.finish()


def keep_used(facts: dict) -> dict:
    """Only the classes and enums fcn-edge's code touches (module names kept in full)."""
    return {"module": facts["module"],
            "classes": {k: v for k, v in facts["classes"].items() if k in USED},
            "enums": {k: v for k, v in facts["enums"].items() if k in USED}}


def _overload_matches(source: list[dict] | None, live: list[dict]) -> bool:
    if source is None:  # no named arguments in the source: positional only
        return all(not p["keyword"] for p in live)
    return [(p["name"], p["default"]) for p in source] == [(p["name"], p["default"]) for p in live]


def _signatures_agree(source: list, live: list) -> bool:
    return (all(any(_overload_matches(s, l) for l in live) for s in source)
            and all(any(_overload_matches(s, l) for s in source) for l in live))


def agreement(source: dict, live: dict, classes: "tuple[str, ...] | None" = None) -> dict:
    """Compare source-derived facts with a live dump: counts of agreeing facts and every difference.

    Compared: module names; per class its public names, each name's kind (method,
    property, read-only property, ...), each method's and constructor's keyword names and
    defaults; per enum its member names.  ``classes`` limits the comparison.
    """
    differences: list[str] = []
    counts = {"names": 0, "kinds": 0, "signatures": 0, "enum_members": 0}
    agreed = dict.fromkeys(counts, 0)

    def tally(kind: str, ok: bool, text: str) -> None:
        counts[kind] += 1
        agreed[kind] += ok
        if not ok:
            differences.append(text)

    wanted = set(classes) if classes else set(source["classes"]) | set(live["classes"]) | set(source["enums"]) | set(live["enums"])
    if not classes:
        for name in sorted(set(source["module"]) | set(live["module"])):
            tally("names", name in source["module"] and name in live["module"], f"module name {name}: "
                  + ("only in the real bindings" if name in live["module"] else "only in the source"))
    for qual in sorted(wanted & (set(source["classes"]) | set(live["classes"]))):
        src, real = source["classes"].get(qual), live["classes"].get(qual)
        if src is None or real is None:
            continue  # counted as a module name
        for name in sorted(set(src["members"]) | set(real["members"])):
            a, b = src["members"].get(name), real["members"].get(name)
            tally("names", bool(a and b), f"{qual}.{name}: " + ("only in the real bindings" if b else "only in the source"))
            if a and b:
                tally("kinds", a["kind"] == b["kind"], f"{qual}.{name}: {a['kind']} in the source, {b['kind']} in the real bindings")
                if a["kind"] in ("method", "static") and b["kind"] == a["kind"]:
                    tally("signatures", _signatures_agree(a["signatures"], b["signatures"]),
                          f"{qual}.{name}: signatures {a['signatures']} in the source, {b['signatures']} in the real bindings")
        if src["init"] or real["init"]:
            tally("signatures", _signatures_agree(src["init"], real["init"]),
                  f"{qual}.__init__: {src['init']} in the source, {real['init']} in the real bindings")
    for qual in sorted(wanted & set(source["enums"]) & set(live["enums"])):
        for member in sorted(set(source["enums"][qual]) | set(live["enums"][qual])):
            tally("enum_members", member in source["enums"][qual] and member in live["enums"][qual],
                  f"{qual}.{member}: only in the " + ("real bindings" if member in live["enums"][qual] else "source"))
    return {"compared": counts, "agreed": agreed, "differences": differences}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("git_dir", help="a clone or mirror of github.com/NVIDIA/TensorRT")
    parser.add_argument("tag", help="e.g. 8.5.3 or v10.3.0")
    parser.add_argument("-o", "--output", help="JSON file (default: stdout)")
    parser.add_argument("--all", action="store_true", help="keep every class, not only those fcn-edge uses")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", args.git_dir, "rev-parse", f"{args.tag}^{{commit}}"], capture_output=True,
                            text=True, check=True).stdout.strip()
    facts = extract(source_files(args.git_dir, args.tag))
    if not args.all:
        facts = keep_used(facts)
    facts.update(format=1, derived_from_source=True, version=args.tag.lstrip("v"),
                 source=f"github.com/NVIDIA/TensorRT tag {args.tag} (commit {commit}), python/src/**/*.cpp, "
                        f"read by tests/engine/trt_api_from_source.py")
    text = json.dumps(facts, indent=1, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
