"""Kemendagri region codes (province → regency → district → village) and the national level.

Data: shared/data/regions, from idn-area-data (ODbL 1.0, see LICENSE-ODbL.md there).
Codes are strings, always: "12.75", never 12.75.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

Level = Literal["national", "province", "regency", "district", "village"]
NATIONAL_CODE = "ID"
LEVELS: tuple[Level, ...] = ("national", "province", "regency", "district", "village")
DATA_DIR = Path(__file__).parent / "data" / "regions"


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: Level
    parent: str | None

    def public(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name, "level": self.level}


def level_of(code: str) -> Level | None:
    """The level a code's shape says, or None if it has no valid shape."""
    if code == NATIONAL_CODE:
        return "national"
    parts = code.split(".")
    widths = [len(p) for p in parts]
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    shapes: dict[tuple[int, ...], Level] = {
        (2,): "province", (2, 2): "regency", (2, 2, 2): "district", (2, 2, 2, 4): "village",
    }
    return shapes.get(tuple(widths))


def regency_of(code: str) -> str:
    """The regency a district or village code lies in: `"12.75.01.1001"` → `"12.75"`."""
    if level_of(code) not in ("regency", "district", "village"):
        raise ValueError(f"{code[:40]!r} is not a regency, district or village code")
    return code[:5]


class RegionDirectory:
    """All regions by code, with parent links; built once per process."""

    def __init__(self, regions: dict[str, Region]):
        self._regions = regions
        self._children: dict[str, list[str]] = {}
        for region in regions.values():
            if region.parent is not None:
                self._children.setdefault(region.parent, []).append(region.code)
        for codes in self._children.values():
            codes.sort()

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> RegionDirectory:
        regions: dict[str, Region] = {
            NATIONAL_CODE: Region(NATIONAL_CODE, "Indonesia", "national", None)
        }
        files: tuple[tuple[str, Level, str | None], ...] = (
            ("provinces.csv", "province", None),
            ("regencies.csv", "regency", "province_code"),
            ("districts.csv", "district", "regency_code"),
            ("villages.csv", "village", "district_code"),
        )
        for filename, level, parent_column in files:
            with open(data_dir / filename, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    parent = row[parent_column] if parent_column else NATIONAL_CODE
                    regions[row["code"]] = Region(row["code"], row["name"], level, parent)
        return cls(regions)

    def get(self, code: str) -> Region | None:
        return self._regions.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._regions

    def __len__(self) -> int:
        return len(self._regions)

    def is_village(self, code: str) -> bool:
        region = self._regions.get(code)
        return region is not None and region.level == "village"

    def children(self, code: str) -> list[Region]:
        return [self._regions[c] for c in self._children.get(code, [])]

    def lineage(self, code: str) -> list[str]:
        """The code and all its ancestors up to ID: village, district, regency, province, ID."""
        out: list[str] = []
        current: str | None = code
        while current is not None:
            out.append(current)
            region = self._regions.get(current)
            current = region.parent if region else None
        return out

    def at_level(self, level: Level, parent: str | None = None) -> list[Region]:
        if parent is not None:
            return [r for r in self.children(parent) if r.level == level]
        return sorted((r for r in self._regions.values() if r.level == level), key=lambda r: r.code)


@lru_cache(maxsize=1)
def directory() -> RegionDirectory:
    return RegionDirectory.load()
