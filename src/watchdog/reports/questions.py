"""The barometer's questions and answers, in Ankestyrelsen's words. Pure.

One ``QuestionSpec`` per table of the report: which deadlines it counts, how it is worded, which
answers it always shows, and which table of Ankestyrelsen's municipal report it matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.rules.types import Duty

# Answer categories, in Ankestyrelsen's words.
JA = "Ja"
NEJ_LOVLIG = "Nej, men lovlig grund"
NEJ = "Nej"
NEJ_VURDERING = "Nej, kommunens vurdering fremgår ikke af genvurderingen"
NEJ_GENVURDERING = "Nej, der ses ikke foretaget en genvurdering"
I_ALT = "I alt"

MONTHS_DA = ["jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"]


@dataclass(frozen=True)
class QuestionSpec:
    """One barometer question: which deadlines it counts and how it is worded."""

    key: str
    duty: Duty
    question: str  # Danish; "{citation}" is replaced by the paragraph(s) of the period
    answers: tuple[str, ...]  # the categories always shown, in order
    applies_to: str  # Danish: which cases the question applies to
    ast_table: str | None = None  # the table's number in Ankestyrelsen's 2023 municipal report
    first_follow_up_only: bool = False
    later_follow_ups_only: bool = False


_THREE = (JA, NEJ_LOVLIG, NEJ)
_TWO = (JA, NEJ)

QUESTIONS: tuple[QuestionSpec, ...] = (
    QuestionSpec(
        "investigation_4m", Duty.INVESTIGATION_4M,
        "Er 4-måneders fristen for at afslutte den børnefaglige undersøgelse overholdt, jf. {citation}?",
        _THREE, "nye børnefaglige undersøgelser (ikke opdateringer)", "2.3"),
    QuestionSpec(
        "assessment_24h", Duty.ASSESSMENT_24H,
        "Er der foretaget en 24-timers vurdering af underretningen, jf. {citation}?",
        _TWO, "underretninger", "6.13"),
    QuestionSpec(
        "reassessment", Duty.REASSESSMENT,
        "Er der foretaget en genvurdering, hvoraf den konkrete vurdering fremgår, jf. {citation}?",
        (JA, NEJ_VURDERING, NEJ_GENVURDERING),
        "underretninger om børn, der allerede modtager støtte eller er anbragt", "6.14"),
    QuestionSpec(
        "follow_up", Duty.FOLLOW_UP,
        "Er kravet om opfølgning inden for de første tre måneder efter iværksættelse af "
        "foranstaltningen overholdt, jf. {citation}?",
        _TWO, "iværksatte foranstaltninger (første opfølgning)", "5.12", first_follow_up_only=True),
    QuestionSpec(
        "follow_up_later", Duty.FOLLOW_UP,
        "Er de senere opfølgninger på foranstaltningen foretaget rettidigt, jf. {citation}?",
        _TWO, "senere opfølgninger på iværksatte foranstaltninger", later_follow_ups_only=True),
    QuestionSpec(
        "child_conversation", Duty.CHILD_CONVERSATION,
        "Er kravet om børnesamtalen forud for afgørelsen overholdt, jf. {citation}?",
        _THREE, "afgørelser om foranstaltninger", "3.8"),
    QuestionSpec(
        "plan", Duty.PLAN,
        "Er der udarbejdet en handleplan (barnets plan, ungeplan) rettidigt, jf. {citation}?",
        _THREE, "foranstaltninger, der kræver en plan", "4.10"),
    QuestionSpec(
        "receipt_confirmation", Duty.RECEIPT_CONFIRMATION,
        "Er modtagelsen af underretningen bekræftet over for den fagperson, der underrettede, "
        "inden for 6 hverdage, jf. {citation}?",
        _TWO, "underretninger fra fagpersoner"),
    QuestionSpec(
        "supervision_visit", Duty.SUPERVISION_VISIT,
        "Er der aflagt de lovpligtige tilsynsbesøg med samtale med barnet, jf. {citation}?",
        _TWO, "anbringelser"),
    QuestionSpec(
        "aftercare_decision", Duty.AFTERCARE_DECISION,
        "Er der truffet afgørelse om støtte efter det 18. år senest 6 måneder før det 18. år, "
        "jf. {citation}?",
        _TWO, "anbragte unge, der nærmer sig det 18. år"),
)
