"""Sort keys as bytes whose byte order is the keys' own order: the members of the Redis store's
sorted sets (docs/design/redis-store.md, section 3).

A list's sort key is `(is_null, value, id)` (`sandbox.pagination.Key`): compared as Python
compares tuples, nulls last, the id breaking ties. Redis orders the members of a sorted set of
equal scores byte by byte (memcmp, `ZRANGE ... BYLEX`), so a key is written as

    flag byte ("0" a value, "1" a null) | the value's UTF-8, each NUL written 00 FF | 00 00 | id

which sorts byte for byte exactly as the tuples do: UTF-8 keeps code-point order; a value that is
a prefix of another ends in 00 00 where the longer one goes on with a byte above 00 or with 00 FF;
equal values leave the order to the ids. A keyset cursor (`sandbox.pagination.Cursor`) names a
key, so the Redis store's pages start where the memory store's do.
"""

from __future__ import annotations

_END = b"\x00\x00"
_NUL = b"\x00\xff"
_FLAGS = {0: b"0", 1: b"1"}


def encode(key: tuple[int, str, str], prefix: str = "") -> bytes:
    """The member for `key`; `prefix` (a customer id, fixed width) groups one customer's keys."""
    flag, value, identifier = key
    text = value.encode("utf-8", "surrogatepass").replace(b"\x00", _NUL)
    return prefix.encode() + _FLAGS[flag] + text + _END + identifier.encode("utf-8", "surrogatepass")


def decode(member: bytes, prefix: str = "") -> tuple[int, str, str]:
    """The key a member was made from (ValueError for bytes no `encode` made)."""
    head = prefix.encode()
    if not member.startswith(head) or member[len(head):len(head) + 1] not in (b"0", b"1"):
        raise ValueError("not a sort-key member")
    flag, at = int(member[len(head):len(head) + 1]), len(head) + 1
    start = at
    while True:  # inside the value every 00 is followed by FF; the first 00 00 ends it
        at = member.find(b"\x00", at)
        if at == -1 or at + 1 >= len(member) or member[at + 1] not in (0x00, 0xFF):
            raise ValueError("not a sort-key member")
        if member[at + 1] == 0x00:
            break
        at += 2
    value = member[start:at].replace(_NUL, b"\x00").decode("utf-8", "surrogatepass")
    return flag, value, member[at + 2:].decode("utf-8", "surrogatepass")
