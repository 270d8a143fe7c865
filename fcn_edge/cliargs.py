"""argparse ``type=`` converters the sub-commands share (standard library only at import).

A command module may import this at top level like the standard library: it keeps
``fcn-edge --help`` instant.  Each converter turns a bad value into argparse's
one-line usage error naming the option, instead of "invalid int value".
"""

from __future__ import annotations

import argparse


def size(text: str) -> tuple[int, int]:
    """``HxW`` (or one number for a square) as ``(H, W)``, through :func:`fcn_edge.artifacts.modelinfo.parse_size`."""
    from fcn_edge.artifacts.modelinfo import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {minimum} or more, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


_UNSET = object()


def add_switch(parser, flag: str, *, help: str, default=_UNSET, dest: str | None = None) -> None:
    """Add ``--flag`` / ``--no-flag``, setting one ``dest`` to True / False (``default`` when neither is given).

    What ``argparse.BooleanOptionalAction`` does, which needs Python 3.9: the CLI must
    start on JetPack 5's Python 3.8, where every sub-command's parser is built at start.
    """
    name = flag[2:]
    options = {"dest": dest or name.replace("-", "_"), "action": _Switch, "help": help}
    if default is not _UNSET:  # else the parser's argument_default (train's is SUPPRESS)
        options["default"] = default
    parser.add_argument(flag, f"--no-{name}", **options)


class _Switch(argparse.Action):
    """``--x`` stores True, ``--no-x`` stores False (the option string says which)."""

    def __init__(self, option_strings, dest, default=None, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, not option_string.startswith("--no-"))


__all__ = ["size", "positive_int", "non_negative_int", "add_switch"]
