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
