"""Redis commands packed into RESP bytes once, for :mod:`.redis_link` to send.

A script's fixed arguments (its SHA, its KEYS, the namespace) are packed when the store starts
(:class:`Command`); a request packs only what is its own. The bytes equal redis-py's packing
(tests/redis/test_redis_link.py compares them over generated arguments).
"""

from __future__ import annotations

Arg = str | bytes | int | float


def encode_arg(value: Arg) -> bytes:
    """One argument as Redis receives it (text: UTF-8; ids keep any code point that arrived)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bool):  # a bool is an int: refuse the ambiguity, as redis-py does
        raise TypeError("a bool is no Redis argument")
    if isinstance(value, int):
        return b"%d" % value
    return repr(float(value)).encode()


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Command:
    """A command whose leading arguments never change, packed once:
    ``Command("EVALSHA", sha, 2, key1, key2).pack(arg)`` is the whole command in RESP."""

    __slots__ = ("_count", "_head")

    def __init__(self, *head: Arg) -> None:
        self._count = len(head)
        self._head = b"".join(_bulk(encode_arg(value)) for value in head)

    def pack(self, *tail: Arg) -> bytes:
        parts = [b"*%d\r\n" % (self._count + len(tail)), self._head]
        for value in tail:  # on every request's path: text, the usual case, is encoded inline
            data = value.encode("utf-8", "surrogatepass") if type(value) is str else encode_arg(value)
            parts += (b"$%d\r\n" % len(data), data, b"\r\n")
        return b"".join(parts)


def pack(*args: Arg) -> bytes:
    """A whole command in RESP."""
    return Command(*args).pack()
