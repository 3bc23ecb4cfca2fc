"""Registration rules: who may register, in which segment, with which programmes.

Pure: the standard library, the region directory's types and the shared vocabulary (segments,
programmes) only; no I/O, no pydantic.
Facts come from ../shared/DOMAIN.md; each regulated figure is a named constant here, so the
day a regulation changes there is one place to change (and to date, when it first does).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from shared.field_errors import FieldError
from shared.regions import NATIONAL_CODE, RegionDirectory, level_of
from shared.text import CONTROL_CHARACTERS, control_character
from shared.vocabulary import (
    CHANNELS,
    EMPLOYER_KINDS,
    PROGRAMS,
    SEGMENTS,
    Channel,
    EmployerKind,
    Program,
    Segment,
)

Sex = Literal["M", "F"]
EmployerRule = Literal["required", "forbidden", "either"]

# --- identity -------------------------------------------------------------------------------
NIK_LENGTH = 16
NIK_FEMALE_DAY_OFFSET = 40  # women's NIK carries the birth day + 40 (41–71)
NIK_EMPTY_SERIAL = "0000"  # serials start at 0001

# --- age ------------------------------------------------------------------------------------
# BPS counts the working-age population (Sakernas, the UCJ denominator) from 15 years.
MIN_WORKER_AGE = 15
# Older than this on the registration day is taken as a typing error in birth_date.
MAX_PLAUSIBLE_AGE = 100
# JKP (job-loss) enrolment: only for workers under 54 when they enrol (PP 37/2021).
JKP_AGE_LIMIT = 54

# --- income (integer rupiah a month) -----------------------------------------------------------
# BPU: declared income at least Rp 1,000,000; JKK (1%) is capped at Rp 207,000, so a declared
# income above Rp 20,700,000 buys nothing and is refused.
BPU_MIN_DECLARED_INCOME = 1_000_000
BPU_MAX_DECLARED_INCOME = 20_700_000
# Wages and incomes of the other segments: positive and below a figure no monthly wage reaches;
# beyond it the number is a typing error (or an overflow attempt), not a wage.
MIN_MONTHLY_INCOME = 1
MONTHLY_INCOME_SANITY_CAP = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SegmentTerms:
    """What a segment's membership may and must contain."""

    required_programs: frozenset[Program]
    optional_programs: frozenset[Program]
    employer: EmployerRule
    min_monthly_income: int
    max_monthly_income: int
    # The kinds of employer (POST /v1/employers) a worker of this segment may name.
    employer_kinds: frozenset[EmployerKind] = frozenset()

    @property
    def allowed_programs(self) -> frozenset[Program]:
        return self.required_programs | self.optional_programs


_ALWAYS: frozenset[Program] = frozenset({"JKK", "JKM"})

# Segments × programmes, employer and income, from DOMAIN.md "Who is covered, with what".
# PU: JP is for medium/large firms and JKP for citizens; v1 knows neither firm size nor
# citizenship, so both are open to every PU worker (JKP still under the age limit).
# PMI: registered by the worker or through a placement agency, so employer_id may be either.
# Employer kinds (issue 11): PU any kind (an OPD's non-ASN staff register as PU of that OPD);
# JAKON a contractor (private, bumn, bumd); PMI a placement agency (private) or none.
SEGMENT_TERMS: dict[str, SegmentTerms] = {
    "PU": SegmentTerms(
        required_programs=_ALWAYS,
        optional_programs=frozenset({"JHT", "JP", "JKP"}),
        employer="required",
        min_monthly_income=MIN_MONTHLY_INCOME,
        max_monthly_income=MONTHLY_INCOME_SANITY_CAP,
        employer_kinds=frozenset(EMPLOYER_KINDS),
    ),
    "BPU": SegmentTerms(
        required_programs=_ALWAYS,
        optional_programs=frozenset({"JHT"}),
        employer="forbidden",
        min_monthly_income=BPU_MIN_DECLARED_INCOME,
        max_monthly_income=BPU_MAX_DECLARED_INCOME,
    ),
    "JAKON": SegmentTerms(
        required_programs=_ALWAYS,
        optional_programs=frozenset(),
        employer="required",
        min_monthly_income=MIN_MONTHLY_INCOME,
        max_monthly_income=MONTHLY_INCOME_SANITY_CAP,
        employer_kinds=frozenset({"private", "bumn", "bumd"}),
    ),
    "PMI": SegmentTerms(
        required_programs=_ALWAYS,
        optional_programs=frozenset({"JHT"}),
        employer="either",
        min_monthly_income=MIN_MONTHLY_INCOME,
        max_monthly_income=MONTHLY_INCOME_SANITY_CAP,
        employer_kinds=frozenset({"private"}),
    ),
}

# What PATCH may change; everything else (identity) is fixed once registered.
CHANGEABLE_FIELDS: tuple[str, ...] = (
    "region_code", "segment", "employer_id", "monthly_income", "programs",
)


@dataclass(frozen=True, slots=True)
class Registration:
    """A worker as registered: identity, where they are counted, and how they are covered."""

    nik: str
    full_name: str
    birth_date: date
    sex: Sex
    region_code: str
    segment: Segment
    employer_id: str | None
    occupation: str | None
    monthly_income: int
    programs: tuple[Program, ...]
    # How the worker came (issue 11); fixed once registered, like the identity.
    channel: Channel = "partner_api"
    agent_id: str | None = None
    office_village: str | None = None


# --- small facts ------------------------------------------------------------------------------


def age_on(birth_date: date, day: date) -> int:
    """Whole years completed on `day` (a 29 February birthday counts from 1 March)."""
    had_birthday = (day.month, day.day) >= (birth_date.month, birth_date.day)
    return day.year - birth_date.year - (0 if had_birthday else 1)


def programs_allowed_for(segment: str) -> frozenset[Program]:
    """Every programme the segment may take (required ones included); empty if unknown."""
    terms = SEGMENT_TERMS.get(segment)
    return terms.allowed_programs if terms else frozenset()


def province_codes(regions: RegionDirectory) -> frozenset[str]:
    cached = _PROVINCES.get(id(regions))
    if cached is None or cached[0] is not regions:
        codes = frozenset(r.code for r in regions.children(NATIONAL_CODE)
                          if r.level == "province")
        cached = _PROVINCES[id(regions)] = (regions, codes)
    return cached[1]


# Computed once per region directory (checked on every registration row).
_PROVINCES: dict[int, tuple[RegionDirectory, frozenset[str]]] = {}


def _listing(items: Iterable[str]) -> str:
    ordered = [p for p in PROGRAMS if p in set(items)]
    return " and ".join(ordered) if len(ordered) <= 2 else ", ".join(ordered)


# --- identity rules -------------------------------------------------------------------------


def _nik_birth_digits(nik: str) -> tuple[int, int, int] | None:
    """(day with any +40, month, two-digit year) from digits 7–12, None if not a DDMMYY date."""
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    plain_day = day - NIK_FEMALE_DAY_OFFSET if day > NIK_FEMALE_DAY_OFFSET else day
    if not 1 <= month <= 12 or not 1 <= plain_day <= 31:
        return None
    return day, month, year


def check_nik(
    nik: str, birth_date: date, sex: str, *, province_codes: Collection[str]
) -> list[FieldError]:
    """The NIK's shape, its province, and its birth digits against birth_date and sex.

    Messages never repeat the NIK: it is personal data and error bodies end up in logs.
    """

    def problem(message: str) -> FieldError:
        return FieldError("nik", message)

    # str.isdigit() accepts Arabic-Indic, full-width and other Unicode digits: ASCII only.
    if not (nik.isascii() and nik.isdigit()):
        return [problem("must contain only the digits 0-9")]
    if len(nik) != NIK_LENGTH:
        return [problem(f"must be exactly {NIK_LENGTH} digits, not {len(nik)}")]
    errors: list[FieldError] = []
    if nik[:2] not in province_codes:
        errors.append(problem(f"digits 1-2 ({nik[:2]}) are not a province code"))
    encoded = _nik_birth_digits(nik)
    if encoded is None:
        errors.append(
            problem("digits 7-12 are not a birth date (DDMMYY, 40 added to DD for women)")
        )
    else:
        day, month, year = encoded
        same_date = (month, year) == (birth_date.month, birth_date.year % 100)
        female_day = birth_date.day + NIK_FEMALE_DAY_OFFSET
        if same_date and sex == "M" and day == female_day:
            errors.append(problem("digits 7-8 have 40 added to the day (a woman), but sex is M"))
        elif same_date and sex == "F" and day == birth_date.day:
            errors.append(problem("digits 7-8 have no 40 added to the day (a man), but sex is F"))
        elif not same_date or day != (female_day if sex == "F" else birth_date.day):
            errors.append(problem("digits 7-12 (DDMMYY) do not match birth_date"))
    if nik[12:] == NIK_EMPTY_SERIAL:
        errors.append(problem(f"serial (digits 13-16) may not be {NIK_EMPTY_SERIAL}"))
    return errors


def check_sex(sex: str) -> list[FieldError]:
    return [] if sex in ("M", "F") else [FieldError("sex", "must be M or F")]


def check_birth_date(birth_date: date, *, today: date) -> list[FieldError]:
    if birth_date > today:
        return [FieldError("birth_date", "is in the future")]
    age = age_on(birth_date, today)
    if age < MIN_WORKER_AGE:
        return [FieldError(
            "birth_date", f"a worker must be at least {MIN_WORKER_AGE} years old (is {age})"
        )]
    if age > MAX_PLAUSIBLE_AGE:
        return [FieldError(
            "birth_date", f"gives an age of {age}; more than {MAX_PLAUSIBLE_AGE} is not plausible"
        )]
    return []


def check_text(field: str, value: str | None, *, required: bool = False) -> list[FieldError]:
    """Free text: not blank, and no control or surrogate characters (shared/text.py: the
    database refuses NUL, and a lone surrogate cannot be stored as UTF-8)."""
    if value is None:
        return [FieldError(field, "is required")] if required else []
    if control_character(value) is not None:
        return [FieldError(field, CONTROL_CHARACTERS)]
    if not value.strip():
        hint = "" if required else "; send null when there is none"
        return [FieldError(field, f"may not be blank{hint}")]
    return []


# --- where the worker is counted ------------------------------------------------------------


def check_region(region_code: str, *, regions: RegionDirectory) -> list[FieldError]:
    if regions.is_village(region_code):
        return []
    level = level_of(region_code)
    if level is None:
        return [FieldError("region_code", "is not a Kemendagri code (village: PP.RR.DD.VVVV)")]
    if level != "village":
        known = "" if region_code in regions else "unknown "
        return [FieldError(
            "region_code",
            f"{region_code} is a {known}{level} code; give the village (kelurahan/desa) code",
        )]
    if not regions.is_village(region_code):
        return [FieldError("region_code", f"{region_code} is not a known village code")]
    return []


# --- segment, employer, programmes, income ----------------------------------------------------


def check_segment(segment: str) -> list[FieldError]:
    if segment in SEGMENT_TERMS:
        return []
    return [FieldError("segment", f"must be one of {' '.join(SEGMENTS)}")]


def check_employer(segment: str, employer_id: str | None) -> list[FieldError]:
    terms = SEGMENT_TERMS.get(segment)
    if terms is None:
        return []
    if terms.employer == "required" and employer_id is None:
        return [FieldError("employer_id", f"is required for {segment}")]
    if terms.employer == "forbidden" and employer_id is not None:
        return [FieldError("employer_id", f"must be null for {segment} (no employer)")]
    errors = check_text("employer_id", employer_id)
    if not errors and employer_id is not None and not is_employer_id(employer_id):
        errors.append(FieldError(
            "employer_id", "must be an employer's id (the UUID POST /v1/employers gave)"))
    return errors


def is_employer_id(employer_id: str) -> bool:
    """Whether the text has an employer id's shape (a UUID): what is worth looking up."""
    try:
        uuid.UUID(employer_id)
    except ValueError:
        return False
    return True


def check_employer_kind(segment: str, employer_id: str | None,
                        kind: str | None) -> list[FieldError]:
    """The named employer against the segment, once looked up: `kind` is the employer's kind,
    None when no employer has this id. (Checked after check_employer: shape and presence.)"""
    if employer_id is None:
        return []
    if kind is None:
        return [FieldError("employer_id", "no employer has this id; register it first "
                                          "(POST /v1/employers)")]
    terms = SEGMENT_TERMS.get(segment)
    if terms is None or kind in terms.employer_kinds:
        return []
    allowed = [k for k in EMPLOYER_KINDS if k in terms.employer_kinds]
    return [FieldError("employer_id", f"is a {kind} employer; {segment} workers may name "
                                      f"only {' or '.join(allowed) or 'no'} employers")]


# --- channel: how the worker came -------------------------------------------------------------
AGENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


def check_channel(channel: str, agent_id: str | None, office_village: str | None,
                  employer_id: str | None, *, regions: RegionDirectory) -> list[FieldError]:
    """A PERISAI agent names itself, a village office its village, an employer's portal its
    employer; no other channel carries an agent or an office."""
    if channel not in CHANNELS:
        return [FieldError("channel", f"must be one of {' '.join(CHANNELS)}")]
    errors: list[FieldError] = []
    if channel == "agent":
        if agent_id is None:
            errors.append(FieldError("agent_id", "is required on the agent channel"))
        elif not AGENT_ID_PATTERN.fullmatch(agent_id):
            errors.append(FieldError(
                "agent_id", "must be 1 to 40 letters, digits, '.', '_' or '-', starting with a "
                            "letter or digit"))
    elif agent_id is not None:
        errors.append(FieldError("agent_id", f"only the agent channel names an agent, not "
                                             f"{channel}"))
    if channel == "village_office":
        if office_village is None:
            errors.append(FieldError("office_village",
                                     "is required on the village_office channel"))
        elif not regions.is_village(office_village):
            errors.append(FieldError("office_village",
                                     "is not a known village (kelurahan/desa) code"))
    elif office_village is not None:
        errors.append(FieldError("office_village", f"only the village_office channel names an "
                                                   f"office, not {channel}"))
    if channel == "employer" and employer_id is None:
        errors.append(FieldError("employer_id", "is required on the employer channel"))
    return errors


def check_programs(
    segment: str,
    programs: Iterable[str],
    *,
    age_at_enrolment: int,
    already_enrolled: Collection[str] = (),
) -> list[FieldError]:
    """Programmes against the segment's terms. JKP's age limit applies when JKP is taken up,
    so a member already in JKP keeps it as they grow older."""
    listed = list(programs)
    errors: list[FieldError] = []
    unknown = [p for p in listed if p not in PROGRAMS]
    for program in dict.fromkeys(unknown):
        errors.append(
            FieldError("programs", f"{program} is not a programme ({' '.join(PROGRAMS)})")
        )
    for program in dict.fromkeys(p for p in listed if listed.count(p) > 1):
        errors.append(FieldError("programs", f"{program} is listed more than once"))
    terms = SEGMENT_TERMS.get(segment)
    if terms is None:
        return errors
    chosen = set(listed)
    missing = terms.required_programs - chosen
    if missing:
        errors.append(FieldError(
            "programs", f"must include {_listing(missing)} (required for {segment})"
        ))
    allowed = terms.allowed_programs
    for program in PROGRAMS:
        if program in chosen and program not in allowed:
            errors.append(FieldError("programs", f"{segment} may not take {program}"))
    if (
        "JKP" in chosen
        and "JKP" in allowed
        and "JKP" not in already_enrolled
        and age_at_enrolment >= JKP_AGE_LIMIT
    ):
        errors.append(FieldError(
            "programs",
            f"JKP is only for workers under {JKP_AGE_LIMIT} when they enrol "
            f"(this worker is {age_at_enrolment})",
        ))
    return errors


def check_income(segment: str, monthly_income: int) -> list[FieldError]:
    terms = SEGMENT_TERMS.get(segment)
    if terms is None:
        return []
    if monthly_income < terms.min_monthly_income:
        return [FieldError(
            "monthly_income", f"must be at least Rp {terms.min_monthly_income:,} for {segment}"
        )]
    if monthly_income > terms.max_monthly_income:
        return [FieldError(
            "monthly_income", f"must be at most Rp {terms.max_monthly_income:,} for {segment}"
        )]
    return []


# --- whole requests -------------------------------------------------------------------------


def check_registration(
    registration: Registration, *, regions: RegionDirectory, today: date
) -> list[FieldError]:
    """Every rule a new registration must satisfy on `today`; empty when it may register."""
    r = registration
    errors = check_sex(r.sex)
    errors += check_birth_date(r.birth_date, today=today)
    errors += check_nik(r.nik, r.birth_date, r.sex, province_codes=province_codes(regions))
    errors += check_text("full_name", r.full_name, required=True)
    errors += check_text("occupation", r.occupation)
    errors += check_region(r.region_code, regions=regions)
    errors += check_segment(r.segment)
    errors += check_employer(r.segment, r.employer_id)
    errors += check_channel(r.channel, r.agent_id, r.office_village, r.employer_id,
                            regions=regions)
    errors += check_income(r.segment, r.monthly_income)
    errors += check_programs(r.segment, r.programs, age_at_enrolment=age_on(r.birth_date, today))
    return errors


def apply_change(current: Registration, patch: Mapping[str, Any]) -> Registration:
    """The registration after a PATCH of CHANGEABLE_FIELDS (check it with check_change first)."""
    changes = {k: v for k, v in patch.items() if k in CHANGEABLE_FIELDS}
    if "programs" in changes:
        changes["programs"] = tuple(changes["programs"])
    return dataclasses.replace(current, **changes)


def check_change(
    current: Registration, patch: Mapping[str, Any], *, regions: RegionDirectory, today: date
) -> list[FieldError]:
    """Rules for a PATCH: only CHANGEABLE_FIELDS, and the result must keep the segment's terms.

    Only rules that involve a changed field are checked again, so a member registered under
    older rules is not refused an unrelated change. Programmes added now are checked on
    today's age (JKP).
    """
    if not patch:
        return [FieldError("", f"nothing to change; give any of {', '.join(CHANGEABLE_FIELDS)}")]
    errors = [
        FieldError(field, "cannot be changed; only " + ", ".join(CHANGEABLE_FIELDS) + " can")
        for field in patch if field not in CHANGEABLE_FIELDS
    ]
    for field in ("region_code", "segment", "monthly_income", "programs"):
        if field in patch and patch[field] is None:
            errors.append(FieldError(field, "may not be null"))
    if errors:
        return errors
    after = apply_change(current, patch)
    changed = set(patch)
    if "region_code" in changed:
        errors += check_region(after.region_code, regions=regions)
    if "segment" in changed:
        errors += check_segment(after.segment)
    if changed & {"segment", "employer_id"}:
        errors += check_employer(after.segment, after.employer_id)
    if changed & {"segment", "monthly_income"}:
        errors += check_income(after.segment, after.monthly_income)
    if changed & {"segment", "programs"}:
        errors += check_programs(
            after.segment,
            after.programs,
            age_at_enrolment=age_on(after.birth_date, today),
            already_enrolled=current.programs,
        )
    return errors


# --- what others may see --------------------------------------------------------------------


def mask_nik(nik: str) -> str:
    """First 6 (issuing district) and last 4 digits shown, the birth digits hidden."""
    if len(nik) <= 10:
        return "*" * len(nik)
    return nik[:6] + "*" * (len(nik) - 10) + nik[-4:]


def mask_name(full_name: str) -> str:
    """First letter of each word and a fixed `***`, so the mask does not tell the length."""
    return " ".join(word[0] + "***" for word in full_name.split())


# --- membership number ------------------------------------------------------------------------
KPJ_SEQUENCE_DIGITS = 10  # a zero-padded sequence, then one Luhn check digit: 11 digits


def luhn_check_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # every second digit from the right, starting with the last
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def kpj_for(sequence: int) -> str:
    """The membership number (KPJ) for the n-th registration: 10 digits of sequence and a Luhn
    check digit, which catches any single mistyped digit and most swapped neighbours."""
    if isinstance(sequence, bool) or not 1 <= sequence < 10**KPJ_SEQUENCE_DIGITS:
        raise ValueError(f"KPJ sequence must be 1 to {10**KPJ_SEQUENCE_DIGITS - 1}")
    body = f"{sequence:0{KPJ_SEQUENCE_DIGITS}d}"
    return body + luhn_check_digit(body)


def is_valid_kpj(kpj: str) -> bool:
    return (
        len(kpj) == KPJ_SEQUENCE_DIGITS + 1
        and kpj.isascii()
        and kpj.isdigit()
        and luhn_check_digit(kpj[:-1]) == kpj[-1]
    )
