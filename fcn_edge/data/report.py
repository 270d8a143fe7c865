"""What happened to the bad files of a dataset: the skip-and-count side of ``on_error``.

``on_error="raise"`` stops at the first bad file with a :class:`DataError` naming it.
``on_error="skip"`` records the file here (once, however many epochs meet it), logs a
warning the first time, and goes on; :meth:`DataReport.summary` gives the count and the
names afterwards.  Conversions that are not errors (a grayscale image expanded to BGR,
16-bit scaled to 8-bit) are counted as notes, so a user learns that 300 of the images
were grayscale without 300 log lines.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fcn_edge.errors import DataError

log = logging.getLogger("fcn_edge.data")

ON_ERROR_CHOICES = ("raise", "skip")


def check_on_error(value: str) -> str:
    if value not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be 'raise' or 'skip', got {value!r}")
    return value


@dataclass(frozen=True)
class BadItem:
    """One skipped sample: its id, the file at fault and the one-line reason."""

    id: str
    path: str
    reason: str


@dataclass
class DataReport:
    """Skipped samples and conversion notes of one dataset (see the module doc)."""

    name: str = "dataset"
    skipped: dict[str, BadItem] = field(default_factory=dict)
    notes: Counter = field(default_factory=Counter)
    note_examples: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # DataLoader workers receive a pickled copy of the dataset: a lock cannot travel.
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """How many distinct samples were skipped."""
        return len(self.skipped)

    @property
    def files(self) -> list[str]:
        """The files at fault, in the order they were met."""
        return [item.path for item in self.skipped.values()]

    def add(self, sample_id: str, path: str | Path, error: DataError | str) -> BadItem:
        item = BadItem(str(sample_id), str(path), str(error))
        with self._lock:
            first = item.id not in self.skipped
            if first:
                self.skipped[item.id] = item
        if first:
            log.warning("%s: skipping %s: %s", self.name, item.id, item.reason)
        return item

    def note(self, text: str, path: str | Path) -> None:
        with self._lock:
            self.notes[text] += 1
            first = text not in self.note_examples
            if first:
                self.note_examples[text] = str(path)
        if first:
            log.info("%s: %s (first: %s; counted in the data report)", self.name, text, path)

    def merge(self, other: "DataReport") -> "DataReport":
        """Fold in another report (e.g. one from a DataLoader worker process)."""
        for item in other.skipped.values():
            self.skipped.setdefault(item.id, item)
        self.notes.update(other.notes)
        for text, path in other.note_examples.items():
            self.note_examples.setdefault(text, path)
        return self

    def summary(self, limit: int = 10) -> str:
        """One paragraph: how many were skipped, which (the first ``limit``), and the notes."""
        lines = []
        if self.skipped:
            lines.append(f"{self.name}: skipped {self.count} bad sample(s):")
            for item in list(self.skipped.values())[:limit]:
                lines.append(f"  {item.path}: {item.reason}")
            if self.count > limit:
                lines.append(f"  ... and {self.count - limit} more")
        else:
            lines.append(f"{self.name}: no bad samples")
        for text, count in sorted(self.notes.items()):
            lines.append(f"  note: {count} file(s): {text} (e.g. {self.note_examples.get(text)})")
        return "\n".join(lines)

    def log_summary(self, logger: logging.Logger | None = None) -> None:
        """Log :meth:`summary` (warning when samples were skipped, info otherwise)."""
        logger = logger or log
        if self.skipped:
            logger.warning("%s", self.summary())
        elif self.notes:
            logger.info("%s", self.summary())

    def to_dict(self) -> dict:
        return {
            "skipped": [dataclasses.asdict(item) for item in self.skipped.values()],
            "skipped_count": self.count,
            "notes": dict(self.notes),
        }
