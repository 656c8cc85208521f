"""The municipality's choices where the statute sets no number. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RulePolicy:
    # Genvurdering: the statute sets no time limit (municipal policy, "kommunal frist").
    reassessment_days: int = 7
    # BL § 95, stk. 3: later follow-ups at the date decided at the previous one. When none was
    # recorded, the next is due this many months after the previous (municipal policy).
    bl_follow_up_fallback_months: int = 6

    @classmethod
    def from_settings(cls, settings) -> RulePolicy:
        return cls(reassessment_days=settings.alerts.reassessment_policy_days)
