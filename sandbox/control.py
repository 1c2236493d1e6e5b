"""The sandbox's own control routes under `/__sandbox/`, outside openapi.yaml.

They answer in Layer's envelope (`{"data": ...}` / `{"errors": [...]}`) like the API does, so a
client needs one parser for both.
"""

from __future__ import annotations

import flask

from sandbox import envelope
from sandbox.errors import bad_request
from sandbox.runtime import Sandbox


def business_summary(business) -> dict:
    """What a frontend developer needs to pick ids: customers, invoices, accounts."""
    return {
        "id": business.id,
        "name": business.name,
        "customers": [
            {
                "id": c.id,
                "external_id": c.external_id,
                "individual_name": c.individual_name,
                "company_name": c.company_name,
                "email": c.email,
                "status": c.status,
            }
            for c in business.customers.values()
        ],
        "invoices": [
            {
                "id": i.id,
                "invoice_number": i.invoice_number,
                "customer_id": i.customer_id,
                "sent_at": i.sent_at,
                "total": i.total_amount,
                "outstanding_balance": i.outstanding_balance,
            }
            for i in business.invoices.values()
        ],
        "ledger_accounts": [
            {
                "id": a.id,
                "stable_name": a.stable_name,
                "name": a.name,
                "account_number": a.account_number,
                "account_type": a.account_type,
                "account_subtype": a.account_subtype,
            }
            for a in business.ledger_accounts.values()
        ],
        "customer_credits": sum(1 for c in business.credits.values() if not c.is_deleted),
        "deleted_customer_credits": sum(1 for c in business.credits.values() if c.is_deleted),
    }


def blueprint(sandbox: Sandbox) -> flask.Blueprint:
    routes = flask.Blueprint("sandbox_control", __name__, url_prefix="/__sandbox")

    @routes.get("/health")
    def health():
        return envelope.data({"status": "ok", "seed": sandbox.seed})

    @routes.get("/businesses")
    def businesses():
        store = sandbox.store
        with store.lock:
            return envelope.data([business_summary(b) for b in store.businesses.values()])

    @routes.post("/reset")
    def reset():
        payload = flask.request.get_json(silent=True) if flask.request.data else {}
        if not isinstance(payload, dict):
            raise bad_request("The body must be a JSON object such as {\"seed\": 7}", location="body")
        seed = payload.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise bad_request("seed must be an integer", location="body", field="seed")
        sandbox.reset(seed)
        return envelope.data({"status": "reset", "seed": sandbox.seed})

    return routes
