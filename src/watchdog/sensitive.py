"""Sensitive data: what a CPR number looks like, however it is written. Pure: no I/O.

The one place that decides whether a text carries a CPR number (DESIGN invariant 5). The intake
refuses a value that holds one (``watchdog.intake.schemas``), the transport's net refuses a message
that holds one (``watchdog.delivery``, through ``message_sensitive``), the digest holds one back,
and an error message never repeats one (``redact``, used by ``watchdog.errors.Problem``).

A text is read in its *normalised* form before the pattern is looked for, so the number cannot
hide behind the way it is typed:

- HTML character references (``&#45;``) and URL escapes (``%2D``, also twice escaped) decoded, so a
  case link ``…?cpr=010190%2D1234`` reads as ``010190-1234``;
- Unicode NFKC (fullwidth digits ``０１０１９０``, superscripts, compatibility forms), and every other
  decimal digit (Arabic-Indic, Devanagari …) as its ASCII digit;
- every dash (U+2010–U+2015, U+2212 minus, U+2043, the small and fullwidth hyphen-minus) as ``-``;
- invisible characters removed: zero-width space and joiners, the soft hyphen, the byte-order mark,
  direction marks and other format characters, combining marks, Hangul fillers, the braille blank;
- every kind of space as a plain space.

The pattern: ``ddmmyy`` with a plausible day and month, then four digits; ``-``, ``/``, ``.`` or
``_`` may separate the groups (``01.01.90-1234``, ``010190/1234``), and spaces may surround the
separator before the last four. Digits on either side mean a longer number (an id, a timestamp).

Names of columns and fields that suggest a CPR number or a person's name are here too
(``is_sensitive_column``): the store never holds either.
"""

from __future__ import annotations

import functools
import html
import json
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

# ddmmyy + xxxx: day 01–31, month 01–12; separators between the groups are optional.
_SEP = r"[-./_]"
# "No digit before the day" is checked after the day's two digits are matched ((?<![0-9]..): the same
# character), so the regex engine can skip ahead to candidate digits: a 20 KB message in ~0.5 ms, not ~1.2.
_CPR = re.compile(
    rf"(?:0[1-9]|[12][0-9]|3[01])(?<![0-9]..){_SEP}?(?:0[1-9]|1[0-2]){_SEP}?[0-9]{{2}}"
    rf" {{0,2}}{_SEP}? {{0,2}}[0-9]{{4}}(?![0-9])"
)

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d\u2e3a\u2e3b"
# Invisible characters that are not of category Cf (those are removed by category).
_INVISIBLE = "\u034f\u115f\u1160\u3164\uffa0\u2800"
_REMOVED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})
# Past this many distinct characters to change, one ``str.translate`` beats a ``str.replace`` each.
_REPLACE_AT_MOST = 24

REDACTED = "[CPR-like number not shown]"

SENSITIVE_REASON = (
    "looks like a CPR number or a child's name: the store never holds them; "
    "remove the column (a child is known by the case reference only)"
)
_SENSITIVE_EXACT = frozenset({
    "navn", "barn", "barnet", "barn_navn", "barnets_navn", "barnetsnavn", "child", "child_name",
    "childname", "fornavn", "efternavn", "mellemnavn", "first_name", "last_name", "surname",
    "full_name", "fuldt_navn", "personnummer", "person_number", "ssn", "borger", "borger_navn",
})


@functools.lru_cache(maxsize=8192)  # a message's characters are mostly the same few hundred
def _char(c: str) -> str:
    if c in _DASHES:
        return "-"
    if c in _INVISIBLE:
        return ""
    category = unicodedata.category(c)
    if category in _REMOVED_CATEGORIES:
        return ""
    if category == "Nd":
        return str(unicodedata.digit(c))
    if category == "Zs" or c in "\t\n\r\x0b\x0c\u2028\u2029\x85":
        return " "
    return c


_ASCII_RUNS = re.compile("([\x00-\x7f]+)")
_ESCAPE = re.compile("%[0-9A-Fa-f]{2}")


def _unquote(text: str) -> str:
    """``urllib.parse.unquote(text)``, only faster for a long text with a few ``%`` (an HTML
    message's ``width:100%``): ``unquote`` decodes every run of ASCII between two non-ASCII
    characters (there are hundreds in Danish text); a run without ``%`` decodes to itself."""
    if "%" not in text or not _ESCAPE.search(text):
        return text  # unquote decodes only "%" and two hex digits; a lone "%" stays as it is
    parts = _ASCII_RUNS.split(text)  # as unquote splits: odd indexes are the ASCII runs
    for i in range(1, len(parts), 2):
        if "%" in parts[i]:
            parts[i] = unquote(parts[i])
    return "".join(parts)


def normalize(text: str) -> str:
    """``text`` as the CPR pattern reads it (see the module docstring). Never stored or shown."""
    if not text:
        return ""
    if text.isascii() and "%" not in text and "&" not in text:
        return text  # the common case: nothing to decode, nothing hidden
    for _ in range(3):  # a link may be escaped twice (%252D); three rounds settle every real case
        before = text
        text = unicodedata.normalize("NFKC", _unquote(html.unescape(text)))
        if text == before or ("%" not in text and "&" not in text):
            break  # settled (without "%" and "&" another round only repeats NFKC, which is stable)
    if text.isascii():
        return text
    # Each distinct character once (a message has thousands of characters, ~100 distinct ones),
    # and only the few that change are replaced.
    table = {c: r for c in set(text) if (r := _char(c)) != c}
    if len(table) > _REPLACE_AT_MOST:
        return text.translate({ord(c): r for c, r in table.items()})
    # ``str.translate`` with a dict looks every character up (about 1 ms for a 20 KB message);
    # one ``str.replace`` per changed character scans in C. The same result: every replacement
    # ("-", "", " " or an ASCII digit) is a character ``_char`` keeps, so no order matters.
    for c, r in table.items():
        text = text.replace(c, r)
    return text


def find_cpr(text: str | None) -> list[str]:
    """The CPR-like numbers in ``text`` (normalised); empty when there are none."""
    return _CPR.findall(normalize(text or ""))


def contains_cpr(text: str | None) -> bool:
    return bool(find_cpr(text))


def redact(text: str) -> str:
    """``text`` with every CPR-like number replaced by a marker: for error messages and logs.

    A text without one comes back unchanged; one with one comes back normalised (the number's
    position is only known in that form).
    """
    if not contains_cpr(text):
        return text
    cleaned = _CPR.sub(REDACTED, normalize(text))
    return cleaned if not contains_cpr(cleaned) else REDACTED


def message_sensitive(message: Any) -> list[str]:
    """Every CPR-like number anywhere in a message: subject, text, HTML and card (the net)."""
    blob = "\n".join([message.subject, message.text, message.html,
                      json.dumps(message.card, ensure_ascii=False)])
    return find_cpr(blob)


def normalize_column(name: str) -> str:
    """Column names are matched case-insensitively; spaces, dots and hyphens count as '_'."""
    return re.sub(r"[\s.\-]+", "_", name.strip().lower().lstrip("\ufeff")).strip("_")


def is_sensitive_column(name: str) -> bool:
    """A column or field name that suggests a CPR number or a person's (child's) name."""
    norm = normalize_column(normalize(name))
    return "cpr" in norm or norm in _SENSITIVE_EXACT or norm.endswith("_navn") or norm.startswith("barn_")
