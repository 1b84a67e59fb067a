"""What happened to every scanned file: prepared, rejected (with the reason), conflicting or ignored.

Written next to the cache as ``report.json`` (for programs) and ``report.txt`` (for people).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fracture_tune.data.dataset import SPLIT_NAMES


@dataclass
class PrepareReport:
    source: str
    kind: str
    image_size: int
    scanned: int = 0
    prepared: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rejected: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    duplicate_groups: list[list[str]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def excluded_count(self) -> int:
        """Files scanned but not in the dataset: rejected ones plus every file of a label conflict."""
        return len(self.rejected) + sum(len(conflict["paths"]) for conflict in self.conflicts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> PrepareReport:
        return cls(**payload)

    def problems(self, limit: int = 10) -> list[str]:
        """One line per rejected file or conflict, for error messages."""
        lines = [f"{item['path']}: {item['reason']}" for item in self.rejected]
        lines += [f"{' = '.join(item['paths'])}: {item['reason']}" for item in self.conflicts]
        if len(lines) > limit:
            lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
        return lines

    def split_table(self) -> list[str]:
        """Images per split and class, with each split's positive share."""
        return _split_table(self.split_counts)

    def render_text(self) -> str:
        lines = [
            f"source: {self.source} ({self.kind})",
            f"image size: {self.image_size}x{self.image_size}",
            f"scanned {self.scanned} files: {self.prepared} prepared, {len(self.rejected)} rejected, "
            f"{sum(len(c['paths']) for c in self.conflicts)} in label conflicts, {len(self.ignored)} ignored",
            "classes: " + ", ".join(f"{name} {count}" for name, count in self.class_counts.items()),
        ]
        lines += self.split_table()
        lines.append(f"exact-duplicate groups (kept together in one split): {len(self.duplicate_groups)}")
        lines += [f"  {' = '.join(group)}" for group in self.duplicate_groups]
        lines += _section("rejected", [f"{item['path']}: {item['reason']}" for item in self.rejected])
        lines += _section(
            "label conflicts (excluded)", [f"{' = '.join(c['paths'])}: {c['reason']}" for c in self.conflicts]
        )
        lines += _section("ignored", [f"{item['path']}: {item['reason']}" for item in self.ignored])
        lines += _section("notes", self.notes)
        return "\n".join(lines) + "\n"


def _split_table(split_counts: dict[str, dict[str, int]]) -> list[str]:
    if not split_counts:
        return []
    class_names = list(next(iter(split_counts.values())).keys())
    lines = ["split   " + "".join(f"{name:>16}" for name in class_names) + f"{'total':>8}{'positive %':>12}"]
    for split_name in SPLIT_NAMES:
        counts = split_counts.get(split_name, {})
        total = sum(counts.values())
        positive = counts.get(class_names[-1], 0) / total * 100 if total else 0.0
        cells = "".join(f"{counts.get(name, 0):>16}" for name in class_names)
        lines.append(f"{split_name:<8}{cells}{total:>8}{positive:>11.1f}%")
    return lines


def _section(title: str, items: list[str]) -> list[str]:
    if not items:
        return [f"{title}: none"]
    return [f"{title} ({len(items)}):"] + [f"  {item}" for item in items]
