"""``sensitive.normalize`` replaces the characters it changes with ``str.replace`` (one per distinct
character) instead of one ``str.translate`` over the whole text, and URL-decodes only the ASCII runs
that hold a ``%``: the same result, checked here against the old code (``urllib``'s ``unquote``,
one translate) for every code point it treats specially and for random texts."""

from __future__ import annotations

import random
import sys
import unicodedata

import pytest

from watchdog import sensitive
from watchdog.sensitive import normalize


def _old_normalize(text: str) -> str:
    """``normalize`` as it was: the same decoding, then one ``str.translate`` of every character."""
    from html import unescape
    from urllib.parse import unquote

    if not text:
        return ""
    if text.isascii() and "%" not in text and "&" not in text:
        return text
    for _ in range(3):
        before = text
        text = unicodedata.normalize("NFKC", unquote(unescape(text)))
        if text == before:
            break
    if text.isascii():
        return text
    table = {ord(c): r for c in set(text) if (r := sensitive._char(c)) != c}
    return text.translate(table) if table else text


def _code_points():
    return (chr(n) for n in range(sys.maxunicode + 1) if not 0xD800 <= n <= 0xDFFF)


@pytest.fixture(scope="module")
def special() -> list[str]:
    """Every code point the translation changes (dashes, invisibles, digits, spaces …)."""
    return [c for c in _code_points() if sensitive._char(c) != c]


def test_the_special_characters_are_the_kinds_the_docstring_names(special):
    assert {"\u2011", "\u2212", "\u200b", "\u00ad", "\ufeff", "\u0663", "\u3000", "\n", "\u2800"} <= set(special)
    assert "-" not in special and " " not in special and "0" not in special and "æ" not in special


def test_every_special_code_point_alone_and_in_company_reads_as_before(special):
    for c in special:  # alone between text, so the replace path (few distinct characters) runs
        text = f"Sag S-0101{c}90-1234 på ærø\n{c}{c}"
        assert normalize(text) == _old_normalize(text), hex(ord(c))
    for start in range(0, len(special), 7):  # a few at a time, still below the translate cut-off
        text = "é ".join(special[start:start + 7]) + " 010190-1234"
        assert normalize(text) == _old_normalize(text), [hex(ord(c)) for c in special[start:start + 7]]
    everything = "x".join(special)  # far above the cut-off: one translate
    assert normalize(everything) == _old_normalize(everything)


def test_random_texts_over_all_of_unicode_read_as_before(special):
    rng = random.Random(19)
    every = list(_code_points())
    pool = special + list("abc 0123456789-./_%&#;æøåÆØÅ\n\t") + ["&#45;", "%2D", "%252D", "&amp;", "&nbsp;",
                                                                "%C3%B8", "%C3", "%B8", "%zz", "%", "100%"]
    for n in range(3000):
        length = rng.randint(1, 60)
        text = "".join(rng.choice(pool) if rng.random() < 0.7 else rng.choice(every) for _ in range(length))
        if n % 3 == 0:
            text = f"010190{text}1234"
        assert normalize(text) == _old_normalize(text), [hex(ord(c)) for c in text]


def test_a_long_message_reads_as_before_and_the_numbers_are_found():
    line = "Frist for børnefaglig undersøgelse \u2013 sag S-2026-000123, forfald 1.\u00a0marts\u200b\n"
    text = (line * 300) + "<p>0101\u200b90\u20111234</p>"
    assert normalize(text) == _old_normalize(text)
    assert sensitive.find_cpr(text) == ["010190-1234"]


def test_unquote_decodes_exactly_as_urllib_does():
    from urllib.parse import unquote

    rng = random.Random(5)
    pool = list("aø€𝟘 -%") + ["%2D", "%C3%B8", "%C3", "%B8", "%E2%82", "%AC", "%F0%9F%98%80", "%zz", "%2", "100%"]
    for _ in range(5000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        assert sensitive._unquote(text) == unquote(text), text


def test_the_cpr_pattern_finds_and_replaces_exactly_what_it_did():
    import re

    sep = r"[-./_]"
    old = re.compile(rf"(?<![0-9])(?:0[1-9]|[12][0-9]|3[01]){sep}?(?:0[1-9]|1[0-2]){sep}?[0-9]{{2}}"
                     rf" {{0,2}}{sep}? {{0,2}}[0-9]{{4}}(?![0-9])")
    rng = random.Random(7)
    pool = list("0123456789" * 3 + "-./_  ax") + ["010190", "311299", "1234", "01.01.90", "0101901234"]
    for _ in range(20000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 14)))
        assert sensitive._CPR.findall(text) == old.findall(text), text
        assert sensitive._CPR.sub("#", text) == old.sub("#", text), text
