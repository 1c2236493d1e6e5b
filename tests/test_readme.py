"""The README's tour works on the default seed: its ids exist and its examples answer."""

from __future__ import annotations

import json
import re

from support import ROOT, credits_path

README = (ROOT / "README.md").read_text()


def variable(name: str) -> str:
    return re.search(rf"^{name}=(\S+)$", README, re.M).group(1)


def test_the_tour_ids_exist_in_the_default_seed(api):
    business, credit = variable("B"), variable("C")
    assert api.get(credits_path(business, credit)).status_code == 200
    world = api.get("/__sandbox/businesses").json()["data"][0]
    assert world["id"] == business
    assert world["id"] in README.split("## A tour with curl")[1].split("```")[0]


def test_the_tour_filters_find_credits(api):
    business = variable("B")
    for query in re.findall(r'"\$U\?([^"]+)"', README):
        if "cursor=" in query:
            continue
        response = api.get(f"{credits_path(business)}?{query}")
        assert response.status_code == 200, query
        assert response.json()["data"], f"the README's example {query} finds nothing"


def test_the_tour_create_example_is_accepted(api):
    body = re.search(r"-X POST \"\$U\" -d '(\{.*?\})'", README, re.S).group(1)
    response = api.post(credits_path(variable("B")), json=json.loads(body))
    assert response.status_code == 201, response.text
