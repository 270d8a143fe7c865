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


__all__ = ["size", "positive_int", "non_negative_int"]
