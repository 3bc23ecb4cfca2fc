"""The domain's words, defined once for every service and event (../shared/DOMAIN.md)."""

from __future__ import annotations

from typing import Literal

Segment = Literal["PU", "BPU", "JAKON", "PMI"]
Program = Literal["JKK", "JKM", "JHT", "JP", "JKP"]
MembershipStatus = Literal["active", "inactive", "terminated"]
ClaimStatus = Literal["submitted", "approved", "rejected"]

SEGMENTS: tuple[Segment, ...] = ("PU", "BPU", "JAKON", "PMI")
PROGRAMS: tuple[Program, ...] = ("JKK", "JKM", "JHT", "JP", "JKP")
MEMBERSHIP_STATUSES: tuple[MembershipStatus, ...] = ("active", "inactive", "terminated")
