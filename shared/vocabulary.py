"""The domain's words, defined once for every service and event (../shared/DOMAIN.md)."""

from __future__ import annotations

from typing import Literal

Segment = Literal["PU", "BPU", "JAKON", "PMI"]
Program = Literal["JKK", "JKM", "JHT", "JP", "JKP"]
MembershipStatus = Literal["active", "inactive", "terminated"]
ClaimStatus = Literal["submitted", "approved", "rejected"]
# How a worker came to be registered (issue 11): a partner system, a PERISAI agent, a village
# office (lurah, kepling), an employer's own portal, or a local government (pemda) drive.
Channel = Literal["partner_api", "agent", "village_office", "employer", "pemda"]
EmployerKind = Literal["private", "opd", "bumn", "bumd", "village_gov"]
# Who funds a payment made by a government or a company (DOMAIN.md): SG government, SD village
# fund, SA village via the regional budget, SL other; SC / SB corporate or bank (CSR).
FundingCode = Literal["SG", "SD", "SA", "SL", "SC", "SB"]

SEGMENTS: tuple[Segment, ...] = ("PU", "BPU", "JAKON", "PMI")
PROGRAMS: tuple[Program, ...] = ("JKK", "JKM", "JHT", "JP", "JKP")
MEMBERSHIP_STATUSES: tuple[MembershipStatus, ...] = ("active", "inactive", "terminated")
CHANNELS: tuple[Channel, ...] = ("partner_api", "agent", "village_office", "employer", "pemda")
EMPLOYER_KINDS: tuple[EmployerKind, ...] = ("private", "opd", "bumn", "bumd", "village_gov")
FUNDING_CODES: tuple[FundingCode, ...] = ("SG", "SD", "SA", "SL", "SC", "SB")
