"""List: filters, sorting, and cursor pagination that never skips or repeats while walking."""

from __future__ import annotations

from datetime import datetime

import pytest

from support import credits_path, stable_line


def everything(api, business_id, **params):
    """All pages of a listing, walked with the returned cursors."""
    items, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get(credits_path(business_id), params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        pagination = page["meta"]["pagination"]
        if not pagination["has_more"]:
            assert pagination["cursor"] is None
            return items
        assert pagination["cursor"]
        cursor = pagination["cursor"]


def add_credits(api, business, count, **extra):
    created = []
    for number in range(count):
        body = {"customer_id": business["customers"][number % len(business["customers"])]["id"],
                "line_items": [stable_line("SALES", 100 + number)], **extra}
        response = api.post(credits_path(business["id"]), json=body)
        assert response.status_code == 201
        created.append(response.json()["data"])
    return created


def moment(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_list_envelope_and_defaults(api, business):
    response = api.get(credits_path(business["id"]))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"]["pagination"] == {
        "cursor": None, "has_more": False, "sort_by": "created_at", "sort_order": "ASC", "total_count": None,
    }
    assert len(body["data"]) == business["customer_credits"]
    created = [c["created_at"] for c in body["data"]]
    assert created == sorted(created)


def test_default_limit_is_100(api, business):
    add_credits(api, business, 110 - business["customer_credits"])
    page = api.get(credits_path(business["id"])).json()
    assert len(page["data"]) == 100 and page["meta"]["pagination"]["has_more"] is True
    assert len(everything(api, business["id"])) == 110


@pytest.mark.parametrize("sort_by", ["created_at", "updated_at", "sent_at", "reference_number"])
@pytest.mark.parametrize("sort_order", ["ASC", "DESC"])
def test_walking_pages_matches_one_big_page_in_every_order(api, business, sort_by, sort_order):
    add_credits(api, business, 6, reference_number="R-dup")  # ties on the sort key, broken by id
    whole = api.get(credits_path(business["id"]), params={"limit": 1000, "sort_by": sort_by, "sort_order": sort_order}).json()["data"]
    walked = everything(api, business["id"], limit=4, sort_by=sort_by, sort_order=sort_order)
    assert [c["id"] for c in walked] == [c["id"] for c in whole]
    present = [(c[sort_by], c["id"]) for c in whole if c[sort_by] is not None]
    absent = [c["id"] for c in whole if c[sort_by] is None]
    expected = sorted(present, reverse=sort_order == "DESC")
    # Nulls come last in ascending order and first in descending order.
    keyed = [(c[sort_by], c["id"]) for c in whole]
    if sort_order == "ASC":
        assert keyed[: len(present)] == expected
        assert [k[1] for k in keyed[len(present):]] == sorted(absent)
    else:
        assert [k[1] for k in keyed[: len(absent)]] == sorted(absent, reverse=True)
        assert keyed[len(absent):] == expected


def test_pages_never_skip_or_repeat_while_credits_come_and_go(api, business):
    add_credits(api, business, 20)
    start = {c["id"] for c in everything(api, business["id"])}
    seen, deleted, cursor = [], set(), None
    for step in range(100):
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = api.get(credits_path(business["id"]), params=params).json()
        seen.extend(c["id"] for c in page["data"])
        # Between pages: create two, delete one already seen and one not yet seen.
        add_credits(api, business, 2)
        candidates_seen = [i for i in seen if i not in deleted]
        unseen = sorted(start - set(seen) - deleted)
        for victim in (candidates_seen[:1] + unseen[-1:]):
            assert api.delete(credits_path(business["id"], victim)).status_code == 200
            deleted.add(victim)
        if not page["meta"]["pagination"]["has_more"]:
            break
        cursor = page["meta"]["pagination"]["cursor"]
    assert len(seen) == len(set(seen)), "a credit was repeated"
    survivors = start - deleted
    assert survivors <= set(seen), f"skipped: {survivors - set(seen)}"


def test_filter_by_customer(api, business):
    whole = everything(api, business["id"])
    for customer in business["customers"]:
        got = everything(api, business["id"], customer_id=customer["id"], limit=2)
        assert [c["id"] for c in got] == [c["id"] for c in whole if c["customer"]["id"] == customer["id"]]


def test_filter_by_unknown_customer_is_404(api, business):
    response = api.get(credits_path(business["id"]), params={"customer_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"})
    assert response.status_code == 404
    assert response.json()["errors"][0]["meta"]["field"] == "customer_id"


@pytest.mark.parametrize("start, end", [
    ("2025-09-01", "2025-11-15"),
    ("2025-10-01T12:00:00Z", "2025-12-01T00:00:00+02:00"),
    (None, "2025-10-01"),
    ("2025-10-01", None),
])
def test_filter_by_sent_at_range(api, business, start, end):
    whole = everything(api, business["id"])
    params = {k: v for k, v in {"sent_at_start": start, "sent_at_end": end}.items() if v}
    got = everything(api, business["id"], limit=3, **params)

    def bound(text):
        return moment(text if "T" in text else text + "T00:00:00Z")

    expected = [
        c["id"] for c in whole
        if c["sent_at"] is not None
        and (start is None or moment(c["sent_at"]) >= bound(start))
        and (end is None or moment(c["sent_at"]) < bound(end))
    ]
    assert [c["id"] for c in got] == expected
    assert expected, "the seed should have credits in this range"


def test_filter_by_reference_numbers_and_memo(api, business):
    whole = everything(api, business["id"])
    references = sorted({c["reference_number"] for c in whole if c["reference_number"]})
    assert len(references) >= 3
    one = everything(api, business["id"], reference_number=references[0])
    assert [c["reference_number"] for c in one] == [references[0]]
    several = everything(api, business["id"], reference_numbers=f"{references[1]}, {references[2]},")
    assert sorted(c["reference_number"] for c in several) == references[1:3]
    both = everything(api, business["id"], reference_number=references[1], reference_numbers=",".join(references[:2]))
    assert [c["reference_number"] for c in both] == [references[1]]

    memo = next(c["memo"] for c in whole if c["memo"])
    exact = everything(api, business["id"], memo=memo)
    assert exact and all(c["memo"] == memo for c in exact)
    assert len(exact) == sum(1 for c in whole if c["memo"] == memo)
    word = memo.split()[-1].upper()
    contains = everything(api, business["id"], memo_contains=word)
    assert [c["id"] for c in contains] == [c["id"] for c in whole if c["memo"] and word.lower() in c["memo"].lower()]


def test_total_count_on_request(api, business):
    customer = business["customers"][0]
    page = api.get(credits_path(business["id"]), params={"limit": 2, "show_total_count": "true"}).json()
    assert page["meta"]["pagination"]["total_count"] == business["customer_credits"]
    filtered = api.get(credits_path(business["id"]), params={
        "limit": 1, "show_total_count": "true", "customer_id": customer["id"], "memo_contains": "e"}).json()
    expected = [c for c in everything(api, business["id"], customer_id=customer["id"]) if c["memo"] and "e" in c["memo"].lower()]
    assert filtered["meta"]["pagination"]["total_count"] == len(expected)


def test_a_cursor_only_continues_its_own_sort(api, business):
    page = api.get(credits_path(business["id"]), params={"limit": 2, "sort_by": "sent_at"}).json()
    cursor = page["meta"]["pagination"]["cursor"]
    wrong = api.get(credits_path(business["id"]), params={"cursor": cursor, "sort_by": "created_at"})
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["meta"]["field"] == "cursor"


@pytest.mark.parametrize("params, field", [
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "W10"}, "cursor"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"sort_by": "amount"}, "sort_by"),
    ({"sort_order": "UP"}, "sort_order"),
    ({"sent_at_start": "last week"}, "sent_at_start"),
    ({"sent_at_end": "2026-02-30"}, "sent_at_end"),
    ({"customer_id": "x"}, "customer_id"),
    ({"reference_numbers": " , "}, "reference_numbers"),
    ({"show_total_count": "maybe"}, "show_total_count"),
])
def test_bad_list_parameters_are_400_naming_the_parameter(api, business, params, field):
    response = api.get(credits_path(business["id"]), params=params)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["meta"]["field"] == field


def test_lists_are_per_business(api, world):
    first, second = (everything(api, b["id"]) for b in world[:2])
    assert not {c["id"] for c in first} & {c["id"] for c in second}
    assert {c["customer"]["id"] for c in first} <= {c["id"] for c in world[0]["customers"]}


def test_unknown_business_is_404(api):
    response = api.get(credits_path("3c90c3cc-0d44-4b50-8888-8dd25736052a"))
    assert response.status_code == 404
    assert response.json()["errors"][0]["meta"]["resource"] == "business"
