"""A stand-in for a service that talks to Layer: the code under test in the example."""

from __future__ import annotations

import httpx


class LayerCredits:
    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"})

    def credits_of(self, business_id: str, customer_id: str) -> list[dict]:
        path = f"/v1/businesses/{business_id}/invoices/customer-credits"
        return self.http.get(path, params={"customer_id": customer_id, "limit": 50}).json()["data"]

    def goodwill_credit(self, business_id: str, customer_id: str, cents: int) -> dict:
        response = self.http.post(f"/v1/businesses/{business_id}/invoices/customer-credits", json={
            "customer_id": customer_id,
            "memo": "Goodwill",
            "line_items": [{"amount": cents,
                            "revenue_account_identifier": {"type": "StableName", "stable_name": "RETURNS_ALLOWANCES"}}],
        })
        response.raise_for_status()
        return response.json()["data"]

    def void(self, business_id: str, credit_id: str) -> None:
        self.http.delete(f"/v1/businesses/{business_id}/invoices/customer-credits/{credit_id}").raise_for_status()
