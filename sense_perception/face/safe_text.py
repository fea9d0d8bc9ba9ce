"""Names and consent records that cannot forge or hide terminal output.

A display name is typed by a person and later printed by ``driver list``, ``enroll``, ``forget`` and
``identify``. Control characters (a newline forges a row, an ANSI escape clears the screen), line
separators and bidirectional-formatting characters (which reverse the text after them) are refused
at enrolment, and escaped on output for galleries written before that check (or by hand).
"""
from __future__ import annotations

import unicodedata

#: Format characters that belong to correct spelling (Persian, Indic scripts, emoji sequences).
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})  # zero-width non-joiner, zero-width joiner
#: Control (Cc), format (Cf: bidi overrides and isolates, zero-width space, BOM, ...), line and
#: paragraph separators, and lone surrogates (undecodable bytes of a command line).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def is_unsafe(ch: str) -> bool:
    """True for a character that must not reach a terminal raw."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES and ch not in _ALLOWED_FORMAT


def describe(ch: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``."""
    name = unicodedata.name(ch, "") or {"Cc": "control character", "Cs": "undecodable byte"}.get(
        unicodedata.category(ch), "invisible character")
    return f"U+{ord(ch):04X} ({name})"


def first_unsafe(text: str) -> int:
    """Index of the first unsafe character of ``text``, -1 when there is none."""
    return next((i for i, ch in enumerate(text) if is_unsafe(ch)), -1)


def unsafe_text_error(text: str, what: str) -> str | None:
    """Why ``text`` (a ``what``, e.g. "driver name") is refused, or None when it is fine."""
    i = first_unsafe(text)
    if i < 0:
        return None
    return (f"{what} contains {describe(text[i])} at position {i + 1}; control, line-break and "
            "bidirectional-formatting characters are refused because printed they could forge "
            "lines, clear the screen or reverse text; nothing was enrolled; fix: type the "
            f"{what} without it")


def printable(value: object) -> str:
    """``str(value)`` with every unsafe character escaped (``\\n``, ``\\x1b``, ``\\u202e``)."""
    text = str(value)
    if first_unsafe(text) < 0:
        return text
    return "".join(ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if is_unsafe(ch) else ch for ch in text)


def shown(value: object) -> str:
    """``value`` as text for a rich console: line breaks, escape sequences and bidi controls
    escaped (:func:`printable`), and rich markup escaped: a path, topic or reason holding ``[/x]``
    raised rich's MarkupError, a traceback after the work was done."""
    from rich.markup import escape

    return escape(printable(value))
