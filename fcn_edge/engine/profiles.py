"""Build profiles: ``NAME.toml`` files holding build-engine options per target.

A profile is the options a target needs, written once and reviewed like code
(``--profile orin-int8`` instead of eight flags on a Jetson's command line).  Keys are
exactly the command-line options (with underscores): ``precision``, ``workspace_mib``,
``timing_cache``, ``min_shape``/``opt_shape``/``max_shape``, ``dla_core``,
``gpu_fallback``, ``version_compatible``, ``exclude_lean_runtime``, ``hardware_compat``,
``calib``, ``calib_cache``, plus a free-text ``description``.  Options given on the
command line override the profile's.

``--profile NAME`` looks in ``./export/profiles/`` (a project's own profiles, which win),
then in the profiles shipped inside the package (``fcn_edge/export/profiles/``, package
data found through :mod:`importlib.resources`, so an installed wheel has them);
``--profile PATH.toml`` reads that file.  Relative paths in a profile are relative to its
folder; for a shipped profile that folder is taken to be ``./export/profiles/`` (so
``timing_cache = "../orin.timing-cache"`` is ``./export/orin.timing-cache`` where you run
the command, never a file inside the installed package).

Errors name the file and the key: an unknown key (with the closest known one), a value
of the wrong type or outside its choices, a TOML syntax error with its line.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_edge.engine.options import OPTION_TYPES, PATH_OPTIONS, BuildOptions, parse_shape
from fcn_edge.errors import FcnEdgeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10
    import tomli as tomllib

PROFILE_DIR = Path("export") / "profiles"
PACKAGE_PROFILES = ("fcn_edge.export", "profiles")   # package, folder of the shipped profiles
EXTRA_KEYS = ("description",)


class ProfileError(FcnEdgeError):
    """A build profile that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    values: dict[str, Any]   # validated option values (paths already resolved)


def shipped_profile_dir() -> Path:
    """The folder of the profiles shipped as package data (in a checkout or an installed wheel)."""
    package, folder = PACKAGE_PROFILES
    try:
        from importlib.resources import files
    except ImportError:  # Python 3.8 (JetPack 5): the package's own folder
        import importlib

        return Path(importlib.import_module(package).__file__).resolve().parent / folder
    return Path(str(files(package).joinpath(folder)))


def profile_search_dirs() -> list[Path]:
    """Where ``--profile NAME`` looks: ./export/profiles, then the shipped profiles."""
    dirs = [Path.cwd() / PROFILE_DIR, shipped_profile_dir()]
    unique: list[Path] = []
    for folder in dirs:
        if folder not in unique:
            unique.append(folder)
    return unique


def available_profiles(search_dirs: list[Path] | None = None) -> list[str]:
    names: set[str] = set()
    for folder in search_dirs or profile_search_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def find_profile(name_or_path: str, search_dirs: list[Path] | None = None) -> Path:
    """A profile path from ``NAME`` (./export/profiles, then the shipped ones) or a path to a .toml file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise ProfileError(f"profile file {candidate} does not exist")
        return candidate
    dirs = search_dirs or profile_search_dirs()
    for folder in dirs:
        path = folder / f"{name_or_path}.toml"
        if path.is_file():
            return path
    known = available_profiles(dirs)
    hint = difflib.get_close_matches(name_or_path, known, n=1)
    raise ProfileError(f"no build profile named '{name_or_path}'"
                       + (f" (did you mean '{hint[0]}'?)" if hint else "")
                       + (f"; available: {', '.join(known)}" if known else f"; looked in {', '.join(map(str, dirs))}"))


def load_profile(name_or_path: str, search_dirs: list[Path] | None = None) -> Profile:
    """Find, parse and validate a profile."""
    path = find_profile(name_or_path, search_dirs)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from exc
    values = validate_profile(data, path, base=_relative_base(path))
    description = data.get("description", "")
    return Profile(name=path.stem, path=path, description=description, values=values)


def _relative_base(path: Path) -> Path:
    """The folder a profile's relative paths start from: its own, or ./export/profiles for a shipped one."""
    try:
        shipped = path.resolve().parent == shipped_profile_dir().resolve()
    except (OSError, RuntimeError):
        shipped = False
    return Path.cwd() / PROFILE_DIR if shipped else path.parent


def validate_profile(data: dict[str, Any], path: Path, base: Path | None = None) -> dict[str, Any]:
    """Check every key and value; return the option values with relative paths resolved from ``base``.

    ``base`` defaults to the profile's folder (see :func:`_relative_base` for shipped profiles).
    """
    base = path.parent if base is None else base
    known = list(OPTION_TYPES) + list(EXTRA_KEYS)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise ProfileError(f"{path}: unknown key '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                               + f"; known keys: {', '.join(known)}")
        if key == "description":
            if not isinstance(value, str):
                raise ProfileError(f"{path}: description must be a string")
            if "\x00" in value:
                raise ProfileError(f"{path}: description holds a NUL character")
            continue
        kind, choices = OPTION_TYPES[key]
        if kind is bool and not isinstance(value, bool):
            raise ProfileError(f"{path}: {key} = {value!r} must be true or false")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ProfileError(f"{path}: {key} = {value!r} must be an integer")
        if kind is str and not isinstance(value, str):
            raise ProfileError(f"{path}: {key} = {value!r} must be a string (in quotes)")
        if isinstance(value, str) and "\x00" in value:
            raise ProfileError(f"{path}: {key} holds a NUL character")
        if choices and value not in choices:
            raise ProfileError(f"{path}: {key} = {value!r} is not one of {', '.join(choices)}")
        if key == "workspace_mib" and value < 1:
            raise ProfileError(f"{path}: workspace_mib = {value} must be at least 1")
        if key == "dla_core" and value < 0:
            raise ProfileError(f"{path}: dla_core = {value} must be 0 or more")
        if key.endswith("_shape"):
            try:
                parse_shape(value, key)
            except FcnEdgeError as exc:
                raise ProfileError(f"{path}: {exc}") from exc
        if key in PATH_OPTIONS and value and not Path(value).is_absolute():
            try:
                value = str((base / value).resolve())
            except (OSError, RuntimeError, ValueError) as exc:
                raise ProfileError(f"{path}: {key} = {value!r} is not a usable path ({exc})") from None
        values[key] = value
    try:
        BuildOptions(**values)  # cross-field rules (all three shapes, lean runtime needs VC, ...)
    except FcnEdgeError as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    return values


def merge_options(profile: Profile | None, cli_values: dict[str, Any]) -> BuildOptions:
    """Defaults < profile < command line (``None`` on the command line means "not given")."""
    values: dict[str, Any] = dict(profile.values) if profile else {}
    values.update({k: v for k, v in cli_values.items() if v is not None})
    if profile:
        values["profile_name"] = profile.name
    return BuildOptions(**values)
