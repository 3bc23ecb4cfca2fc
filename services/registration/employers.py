"""Employer rules (issue 11): who may be registered as an employer, where, and the workers it
declares. Pure, like domain.py: the standard library, the region directory and the shared
vocabulary only.

Employers are private companies and, for the coverage of government staff who are not civil
servants (non-ASN), local-government agencies (OPD), state and regional enterprises (BUMN,
BUMD) and village governments. Their names are not personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.field_errors import FieldError
from shared.regions import NATIONAL_CODE, RegionDirectory, level_of
from shared.text import CONTROL_CHARACTERS, control_character
from shared.vocabulary import EMPLOYER_KINDS

NAME_MAX_CHARS = 200
SOURCE_MAX_CHARS = 200
# NPP (Nomor Pendaftaran Perusahaan, BPJS Ketenagakerjaan's employer number): kept as text;
# offices write it with dots or dashes.
NPP_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9./-]{0,29}")
# Declared workforce: a year of this century, and a count no single employer reaches beyond
# (the largest employers in Indonesia have a few hundred thousand workers).
FIRST_DECLARED_YEAR = 2000
LAST_DECLARED_YEAR = 2100
MAX_DECLARED_WORKERS = 10_000_000


@dataclass(frozen=True, slots=True)
class Declared:
    """How many workers an employer declared for a year, and on what source."""

    year: int
    count: int
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Employer:
    """An employer as registered."""

    name: str
    kind: str
    region_code: str
    npp: str | None = None
    declared: tuple[Declared, ...] = ()


def _text(field: str, value: str | None, *, required: bool, max_chars: int) -> list[FieldError]:
    if value is None:
        return [FieldError(field, "is required")] if required else []
    if control_character(value) is not None:
        return [FieldError(field, CONTROL_CHARACTERS)]
    if not value.strip():
        return [FieldError(field, "may not be blank" + ("" if required else
                                                        "; send null when there is none"))]
    if len(value) > max_chars:
        return [FieldError(field, f"must be at most {max_chars} characters")]
    return []


def check_kind(kind: str) -> list[FieldError]:
    if kind in EMPLOYER_KINDS:
        return []
    return [FieldError("kind", f"must be one of {' '.join(EMPLOYER_KINDS)}")]


def check_employer_region(region_code: str, *, regions: RegionDirectory,
                          field: str = "region_code") -> list[FieldError]:
    """Any level below national: a province's OPD sits at the province, a village government
    in its village."""
    level = level_of(region_code)
    if level is None or level == "national":
        return [FieldError(field, "is not a Kemendagri province, regency, district or village "
                                  "code (e.g. 12.75 or 12.75.01.1001)")]
    if region_code not in regions:
        return [FieldError(field, f"{region_code} is not a known {level} code")]
    return []


def check_npp(npp: str | None) -> list[FieldError]:
    if npp is None:
        return []
    if not NPP_PATTERN.fullmatch(npp):
        return [FieldError("npp", "must be 1 to 30 letters, digits, '.', '/' or '-', starting "
                                  "with a letter or digit")]
    return []


def check_declared(declared: Declared, *, field: str = "declared_workers") -> list[FieldError]:
    errors: list[FieldError] = []
    if not FIRST_DECLARED_YEAR <= declared.year <= LAST_DECLARED_YEAR:
        errors.append(FieldError(f"{field}.year", f"must be between {FIRST_DECLARED_YEAR} and "
                                                  f"{LAST_DECLARED_YEAR}"))
    if declared.count < 0:
        errors.append(FieldError(f"{field}.count", "may not be negative"))
    elif declared.count > MAX_DECLARED_WORKERS:
        errors.append(FieldError(f"{field}.count", f"more than {MAX_DECLARED_WORKERS:,} workers "
                                                   "is not plausible for one employer"))
    errors += _text(f"{field}.source", declared.source, required=False,
                    max_chars=SOURCE_MAX_CHARS)
    return errors


def check_employer(employer: Employer, *, regions: RegionDirectory) -> list[FieldError]:
    """Every rule a new employer must satisfy; empty when it may be registered."""
    errors = _text("name", employer.name, required=True, max_chars=NAME_MAX_CHARS)
    errors += check_kind(employer.kind)
    errors += check_employer_region(employer.region_code, regions=regions)
    errors += check_npp(employer.npp)
    for declared in employer.declared:
        errors += check_declared(declared)
    return errors


def with_declared(current: Iterable[Declared], figure: Declared) -> tuple[Declared, ...]:
    """The declared figures with `figure` added, or replacing the same year's; by year."""
    kept = {d.year: d for d in current}
    kept[figure.year] = figure
    return tuple(kept[year] for year in sorted(kept))


def in_region(employer_region: str, region: str) -> bool:
    """Whether an employer registered at `employer_region` lies within `region` (itself, or a
    region it contains); the national code contains every region."""
    return (region == NATIONAL_CODE or employer_region == region
            or employer_region.startswith(region + "."))
