"""The Redis store's sorted-set members (sandbox/stores/lexkey.py) sort byte for byte exactly as
the memory store's sort keys sort as tuples: the claim its keyset pages and cursors rest on."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from layer_sandbox.stores.lexkey import decode, encode

TEXT = st.text(alphabet=st.characters(codec=None, blacklist_categories=()), max_size=12) | st.sampled_from(
    ["", "\x00", "\x00\x00", "a", "a\x00", "a\x00b", "\xff", "\U0001f600", "\ud800", "2026-01-01T00:00:00.000000Z"])
IDS = st.uuids(version=4).map(str) | st.sampled_from([str(uuid.UUID(int=0)), "ffffffff-ffff-4fff-bfff-ffffffffffff"])
KEYS = st.builds(lambda null, value, identifier: (1, "", identifier) if null else (0, value, identifier),
                 st.booleans(), TEXT, IDS)


@settings(max_examples=400, deadline=None)
@given(st.lists(KEYS, min_size=2, max_size=40))
def test_members_sort_bytewise_as_the_keys_sort_as_tuples(keys):
    assert [decode(member) for member in sorted(encode(key) for key in keys)] == sorted(keys)


@settings(max_examples=300, deadline=None)
@given(KEYS, IDS)
def test_a_member_decodes_to_its_key_with_or_without_a_customer_prefix(key, customer):
    assert decode(encode(key)) == key
    assert decode(encode(key, prefix=customer), prefix=customer) == key


def test_one_customers_members_lie_together_between_its_prefix_and_the_prefix_then_ff():
    one, other = "11111111-1111-4111-8111-111111111111", "11111111-1111-4111-8111-111111111112"
    members = sorted(encode((flag, value, str(uuid.uuid4())), prefix=customer)
                     for customer in (one, other) for flag, value in ((0, "a"), (0, "\U0001f600"), (1, "")))
    mine = [m for m in members if one.encode() <= m < one.encode() + b"\xff"]
    assert len(mine) == 3 and all(m.startswith(one.encode()) for m in mine)


def test_bytes_no_encode_made_are_refused():
    import pytest

    for bad in (b"", b"2abc\x00\x00id", b"0abc", b"0a\x00b\x00\x00id"):
        with pytest.raises(ValueError):
            decode(bad)


def test_redis_itself_orders_the_members_and_pages_them_as_the_keys_order(redis_server):
    """What the claim is for: a real Redis's ZRANGE BYLEX gives the keys in tuple order, and a
    page after a cursor's key (exclusive) starts at the next key, ascending and descending."""
    import random

    import redis

    generator = random.Random(7)
    values = ["", "\x00", "a", "a\x00", "a\x00b", "ab", "\xff", "\u00e9", "\U0001f600", "2026-01-01T00:00:00Z"]
    keys = [(1, "", str(uuid.UUID(int=generator.getrandbits(128), version=4))) if generator.random() < 0.2 else
            (0, generator.choice(values), str(uuid.UUID(int=generator.getrandbits(128), version=4)))
            for _ in range(300)]
    client = redis.Redis.from_url(redis_server.url)
    client.delete("lexkey-test")
    client.zadd("lexkey-test", {encode(key): 0 for key in keys})
    in_order = sorted(keys)
    assert [decode(m) for m in client.zrange("lexkey-test", "-", "+", bylex=True)] == in_order
    after = in_order[100]
    page = client.zrange("lexkey-test", b"(" + encode(after), "+", bylex=True, offset=0, num=20)
    assert [decode(m) for m in page] == in_order[101:121]
    back = client.zrange("lexkey-test", b"(" + encode(after), "-", bylex=True, desc=True, offset=0, num=20)
    assert [decode(m) for m in back] == in_order[80:100][::-1]
    client.close()
