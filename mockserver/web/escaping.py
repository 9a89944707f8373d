"""Text from a request, made safe to show: in a log line, an error message, a banner.

A request's path, headers and body may hold anything: a newline that would start a forged
log line, a terminal escape, a lone surrogate that no encoder accepts. Shown through
:func:`printable`, each such character appears as its Python escape (``\\n``, ``\\x1b``,
``\\udfff``) and every other character as itself.
"""

from __future__ import annotations


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every character that is not printable escaped; cut to ``limit`` characters first."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
