"""Stage 1 intake: an import file's bytes as text, or a refusal that says where and why. Pure.

What the case systems and Excel write, and what each gets:

- UTF-8, with or without a byte-order mark: read.
- UTF-16 and UTF-32 with a byte-order mark (Excel's "Unicode text"): read.
- Windows-1252 (Danish Excel's "CSV"): read when no byte of the file is UTF-8 beyond ASCII. A
  byte that Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) is refused, never turned
  into U+FFFD.
- A UTF-8 file with a stray byte that is not UTF-8: refused with its line. Read as Windows-1252
  the whole file would be wrong (``Søren`` stored as ``SÃ¸ren``).
- NUL bytes (UTF-16 or UTF-32 without a byte-order mark, or a binary file): refused.
"""

from __future__ import annotations

from watchdog.errors import Problem, ValidationFailed

_BOMS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32"),
    (b"\xef\xbb\xbf", "utf-8", "UTF-8"),
    (b"\xff\xfe", "utf-16-le", "UTF-16"),
    (b"\xfe\xff", "utf-16-be", "UTF-16"),
)
_HINT = "export the file again as UTF-8 (in Excel: CSV UTF-8)"


def _line_of(data: bytes, position: int, codec: str = "utf-8") -> int:
    return data[:position].decode(codec, errors="replace").count("\n") + 1


def _refuse(source: str, line: int, reason: str) -> ValidationFailed:
    return ValidationFailed([Problem(source, str(line), "(file)", reason)])


def decode(data: bytes, source: str = "(file)") -> str:
    """The text of an import file; ValidationFailed (with the line) for a damaged one."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            body = data[len(bom):]
            try:
                return body.decode(codec)
            except UnicodeDecodeError as exc:
                raise _refuse(source, _line_of(body, exc.start, codec),
                              f"not valid {name} although the file starts with a {name} byte-order "
                              f"mark (byte {exc.start + len(bom)}); {_HINT}") from None
    if b"\x00" in data:
        raise _refuse(source, _line_of(data, data.index(b"\x00")),
                      "contains NUL bytes: a UTF-16 or UTF-32 file without a byte-order mark, or not a "
                      f"text file; {_HINT}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc
    if any(ord(c) > 127 for c in data.decode("utf-8", errors="replace").replace("\ufffd", "")):
        bad = data[first_bad.start]
        raise _refuse(source, _line_of(data, first_bad.start),
                      f"the byte 0x{bad:02X} is not UTF-8, but the rest of the file is: the file mixes "
                      f"two encodings (read as Windows-1252 its Danish letters would be garbled); "
                      f"correct that line or {_HINT}") from None
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise _refuse(source, _line_of(data, exc.start),
                      f"the byte 0x{data[exc.start]:02X} is neither UTF-8 nor Windows-1252 (it would be "
                      f"read as U+FFFD, a lost character); {_HINT}") from None
