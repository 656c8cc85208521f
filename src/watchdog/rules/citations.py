"""The one place where each duty's legal source is written down. Pure.

Each (duty, regime[, variant]) maps to the paragraph cited on every deadline, alert and report,
and to how well it was checked (LEGAL.md): "verbatim" = the statute text was read, "paraphrase" =
an authority's or municipality's wording was read, "unverified" = not checked. Correcting a
paragraph is a one-line change here; the next refresh writes it onto every deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.rules.types import Duty, Regime


@dataclass(frozen=True, slots=True)
class Citation:
    text: str  # at most 100 characters (Deadline.citation)
    confidence: str  # verbatim | paraphrase | unverified


_S, _B = Regime.SEL, Regime.BL

CITATIONS: dict[tuple[Duty, Regime, str | None], Citation] = {
    (Duty.ASSESSMENT_24H, _S, None): Citation("SEL § 155, stk. 2", "paraphrase"),
    (Duty.ASSESSMENT_24H, _B, None): Citation("BL § 136", "unverified"),
    (Duty.REASSESSMENT, _S, None): Citation("SEL § 155 a, stk. 1", "paraphrase"),
    (Duty.REASSESSMENT, _B, None): Citation("BL § 137, stk. 1", "verbatim"),
    (Duty.INVESTIGATION_4M, _S, None): Citation("SEL § 50, stk. 7", "paraphrase"),
    (Duty.INVESTIGATION_4M, _B, None): Citation("BL § 20, stk. 3", "verbatim"),
    (Duty.FOLLOW_UP, _S, None): Citation("SEL § 70, stk. 1", "paraphrase"),
    (Duty.FOLLOW_UP, _B, None): Citation("BL § 95, stk. 2", "verbatim"),
    (Duty.FOLLOW_UP, _B, "later"): Citation("BL § 95, stk. 3", "verbatim"),
    (Duty.RECEIPT_CONFIRMATION, _S, None): Citation("SEL § 155 b, stk. 1", "paraphrase"),
    (Duty.RECEIPT_CONFIRMATION, _B, None): Citation("BL § 138", "unverified"),
    (Duty.CHILD_CONVERSATION, _S, None): Citation("SEL § 48", "paraphrase"),
    (Duty.CHILD_CONVERSATION, _B, None): Citation("BL § 5, stk. 3-4", "paraphrase"),
    (Duty.PLAN, _S, None): Citation("SEL § 140, stk. 1 (handleplan)", "paraphrase"),
    (Duty.PLAN, _B, None): Citation("BL § 91 (barnets plan)", "paraphrase"),
    (Duty.PLAN, _B, "ungeplan"): Citation("BL § 108 (ungeplan)", "paraphrase"),
    (Duty.SUPERVISION_VISIT, _S, None): Citation("SEL § 148", "paraphrase"),
    (Duty.SUPERVISION_VISIT, _B, None): Citation("BL § 156, stk. 5", "paraphrase"),
    (Duty.AFTERCARE_DECISION, _S, None): Citation("SEL § 68, stk. 11", "paraphrase"),
    (Duty.AFTERCARE_DECISION, _B, None): Citation("BL § 111, stk. 1", "paraphrase"),
}


def citation_for(duty: Duty, regime: Regime, variant: str | None = None) -> Citation:
    """The citation of a duty under a regime; a variant falls back to the duty's main paragraph."""
    found = CITATIONS.get((duty, regime, variant)) or CITATIONS.get((duty, regime, None))
    if found is None:  # a programming error: every duty has both regimes above
        raise KeyError(f"no citation for {duty.value} under {regime.value}")
    return found
