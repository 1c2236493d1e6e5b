"""An example consumer test suite using the layer-sandbox pytest plugin (installed with the package)."""

import pytest
from refunds import LayerCredits


def test_goodwill_credit_then_void(layer_sandbox):
    business = layer_sandbox.businesses()[0]
    customer = business["customers"][0]
    layer = LayerCredits(layer_sandbox.base_url, token="any-token")

    credit = layer.goodwill_credit(business["id"], customer["id"], cents=1500)
    assert credit in layer.credits_of(business["id"], customer["id"])
    layer.void(business["id"], credit["id"])

    layer_sandbox.assert_requests("POST", "*/customer-credits", count=1)
    layer_sandbox.assert_requests("DELETE", f"*/customer-credits/{credit['id']}", count=1)


@pytest.mark.layer_sandbox(scenario="empty", seed=7)
def test_a_business_without_credits(layer_sandbox):
    business = layer_sandbox.businesses()[0]
    layer = LayerCredits(layer_sandbox.base_url, token="any-token")
    assert layer.credits_of(business["id"], business["customers"][0]["id"]) == []


def test_layer_being_down(layer_sandbox):
    layer_sandbox.add_rule(method="POST", path="/v1/*", code=500, count=1)
    business = layer_sandbox.businesses()[0]
    layer = LayerCredits(layer_sandbox.base_url, token="any-token")
    with pytest.raises(Exception):
        layer.goodwill_credit(business["id"], business["customers"][0]["id"], cents=100)
