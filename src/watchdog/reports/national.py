"""Ankestyrelsen's national figures, to show beside the municipality's own barometer tables. Pure.

A versioned table: every figure names the barometer year, the question (the key of
``reports.barometer.QUESTIONS``), the share of cases answered "Ja", and its source. A year or a
question without a figure here shows nothing: never an estimate. To add a year, add its lines
with their source and move ``VERSION`` on.

"Year" is the year of Ankestyrelsen's report (Børnesagsbarometret 2023, 2024 …), which reviews
cases decided in the period before it; the figure is the result across the municipalities that
took part that year.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "2026-12-01"

#: Ankestyrelsen on the municipal results (paraphrased in Danish): a single municipality's
#: sample is too small to say anything general about its case handling.
CAUTION_DA = ("Ankestyrelsen understreger, at datagrundlaget for den enkelte kommune i Børnesagsbarometret er for "
              "lille til at sige noget generelt om kommunens sagsbehandling, og landstallet er gennemsnittet for de "
              "kommuner, der deltog det år. Sammenlign derfor med forsigtighed, især når en tabel bygger på få sager.")


@dataclass(frozen=True)
class Source:
    title: str
    publisher: str
    published: str  # dd-mm-yyyy, or the year
    url: str


@dataclass(frozen=True)
class NationalFigure:
    question: str  # QuestionSpec.key
    year: int
    percent_ja: int
    source: Source

    @property
    def label(self) -> str:
        return f"Landsplan {self.year}: {self.percent_ja} %"


_SM_2023 = Source("Børnesagsbarometret 2023 kortlægger den juridiske kvalitet i kommunernes sagsbehandling",
                  "Social-, Bolig- og Ældreministeriet", "27-06-2023",
                  "https://www.sm.dk/nyheder/nyhedsarkiv/2023/jun/boernesagsbarometret-2023-kortlaegger-den-juridiske-"
                  "kvalitet-i-kommunernes-sagsbehandling")
_AST_2024 = Source("Børnesagsbarometret 2024 – Der er ikke væsentlige ændringer i kvaliteten af kommunernes "
                   "sagsbehandling om udsatte børn og unge", "Ankestyrelsen", "2024",
                   "https://ast.dk/nyheder/nyheder/nyheder-2024/bornesagsbarometret-2024-2013-der-er-ikke-vaesentlige-"
                   "aendringer-i-kvaliteten-af-kommunernes-sagsbehandling-om-udsatte-born-og-unge")
_AST_2021 = Source("Børnesagsbarometret 2021 – et indblik i kommunernes sagsbehandling på børneområdet",
                   "Ankestyrelsen", "2021",
                   "https://ast.dk/born-familie/artikler/sager-om-born-og-unge/bornesagsbarometret-2021-2013-et-"
                   "indblik-i-kommunernes-sagsbehandling-pa-borneomradet")

FIGURES: tuple[NationalFigure, ...] = (
    NationalFigure("investigation_4m", 2021, 60, _AST_2024),  # as the 2024 report compares it
    NationalFigure("assessment_24h", 2021, 88, _AST_2021),
    NationalFigure("child_conversation", 2021, 61, _AST_2021),
    NationalFigure("investigation_4m", 2023, 34, _SM_2023),
    NationalFigure("assessment_24h", 2023, 96, _SM_2023),
    NationalFigure("child_conversation", 2023, 61, _SM_2023),
    NationalFigure("investigation_4m", 2024, 50, _AST_2024),
    NationalFigure("follow_up", 2024, 75, _AST_2024),
    NationalFigure("child_conversation", 2024, 65, _AST_2024),
)


def figures_for(question: str, years: range | tuple[int, ...]) -> tuple[NationalFigure, ...]:
    """The national figures of ``question`` for the given years, oldest first (none: empty)."""
    wanted = set(years)
    return tuple(sorted((f for f in FIGURES if f.question == question and f.year in wanted), key=lambda f: f.year))
