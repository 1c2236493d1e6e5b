"""Isolated namespaces, the controllable clock, the request journal and the rate limit."""

from __future__ import annotations

import httpx
import pytest

from layer_sandbox.ratelimit import RateLimiter
from support import AUTH, SandboxProcess, checking_client, credits_path, stable_line

NS = "X-Sandbox-Namespace"


def make_credit(client, business, **extra):
    response = client.post(credits_path(business["id"]), json={
        "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES", 777)], **extra})
    assert response.status_code == 201, response.text
    return response.json()["data"]


@pytest.fixture
def job(sandbox, check):
    """A client in its own namespace, dropped afterwards."""
    with checking_client(sandbox.base_url, check, headers={**AUTH, NS: "job-17"}) as client:
        yield client
    httpx.delete(f"{sandbox.base_url}/__sandbox/namespaces/job-17")


def test_namespaces_start_from_the_same_seed_and_stay_apart(api, job, business):
    assert job.get("/__sandbox/businesses").json() == api.get("/__sandbox/businesses").json()
    mine = make_credit(job, business, memo="only in job-17")
    assert api.get(credits_path(business["id"], mine["id"])).status_code == 404
    assert job.get(credits_path(business["id"], mine["id"])).status_code == 200
    assert api.get(credits_path(business["id"]), params={"memo": "only in job-17"}).json()["data"] == []


def test_reset_rules_clock_and_export_target_one_namespace(api, job, business):
    # Both namespaces start from the same seed, so their first creates even get the same id.
    in_default = make_credit(api, business, memo="in default")
    in_job = make_credit(job, business, memo="in job")
    assert in_default["id"] == in_job["id"]
    job.post("/__sandbox/rules", json={"path": "/v1/*", "code": 500})
    job.post("/__sandbox/clock", json={"frozen_at": "2030-01-01T00:00:00Z"})
    assert api.get("/__sandbox/rules").json()["data"] == []
    assert api.get("/__sandbox/clock").json()["data"]["mode"] == "system"
    assert job.get(credits_path(business["id"])).status_code == 500
    assert api.get(credits_path(business["id"])).status_code == 200

    exported = job.get("/__sandbox/state").json()["data"]
    assert exported["namespace"] == "job-17"
    memos = {c["memo"] for c in exported["businesses"][0]["customer_credits"]}
    assert "in job" in memos and "in default" not in memos

    job.post("/__sandbox/reset")
    assert job.get(credits_path(business["id"], in_job["id"])).status_code == 404
    assert api.get(credits_path(business["id"], in_default["id"])).json()["data"]["memo"] == "in default"
    namespaces = {n["namespace"] for n in api.get("/__sandbox/namespaces").json()["data"]}
    assert {"default", "job-17"} <= namespaces


@pytest.mark.parametrize("name", ["bad name", "-dash-first", "x" * 65, "ünï", "a/b"])
def test_bad_namespace_names_are_400(sandbox, check, business, name):
    headers = {**AUTH, NS: name.encode("utf-8")}
    with checking_client(sandbox.base_url, check, headers=headers) as client:
        for response in (client.get(credits_path(business["id"])), client.get("/__sandbox/businesses")):
            assert response.status_code == 400
            assert response.json()["errors"][0]["meta"]["field"] == NS


def test_the_namespace_limit_is_enforced(tmp_path, check):
    """The limit is the sandbox's, not a fault of the request: a 503 that says so, the request
    still judged on its own (request=pass), and no blame on a header the client never sent."""
    server = SandboxProcess(tmp_path, "--max-namespaces", "2")
    try:
        business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
        with checking_client(server.base_url, check) as client:
            assert client.get(credits_path(business["id"]), headers={NS: "one"}).status_code == 200
            refused = client.get(credits_path(business["id"]), headers={NS: "two"})
            assert refused.status_code == 503 and "--max-namespaces" in refused.json()["errors"][0]["description"]
            assert refused.headers["x-sandbox-contract"] == "request=pass; response=pass"
            by_path = client.get(f"/__ns/two{credits_path(business['id'])}")
            assert by_path.status_code == 503 and NS not in by_path.text
            control = client.get("/__sandbox/businesses", headers={NS: "two"})
            assert control.status_code == 503
            [entry, *_] = client.get("/__sandbox/requests", params={"namespace": "two"}).json()["data"]
            assert entry["request_validation"] == "pass" and entry["status"] == 503
            assert client.delete("/__sandbox/namespaces/one").status_code == 200
            assert client.get(credits_path(business["id"]), headers={NS: "two"}).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["bad name", "-dash-first", "x" * 65])
def test_a_bad_namespace_name_in_a_url_names_the_url(sandbox, business, name):
    for path in (credits_path(business["id"]), "/__sandbox/businesses"):
        response = httpx.get(f"{sandbox.base_url}/__ns/{name}{path}", headers=AUTH)
        assert response.status_code == 400, path
        meta = response.json()["errors"][0]["meta"]
        assert (meta["location"], meta["field"]) == ("path", "/__ns/{namespace}")


# ---------------------------------------------------------------------------------- clock

def test_frozen_clock_makes_bodies_byte_stable(api, job, business):
    bodies = []
    for client in (api, job):
        client.post("/__sandbox/reset")
        client.post("/__sandbox/clock", json={"frozen_at": "2026-01-01T00:00:00Z"})
        response = client.post(credits_path(business["id"]), json={
            "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES", 100)]})
        bodies.append(response.content)
        assert response.json()["data"]["created_at"] == "2026-01-01T00:00:00.000000Z"
    assert bodies[0] == bodies[1]
    api.post("/__sandbox/clock", json={"system": True})


def test_advance_moves_updated_and_deleted_stamps(api, business):
    api.post("/__sandbox/clock", json={"frozen_at": "2026-03-01T12:00:00Z"})
    credit = make_credit(api, business)
    api.post("/__sandbox/clock", json={"advance_seconds": 3600})
    updated = api.patch(credits_path(business["id"], credit["id"]), json={"memo": "later"}).json()["data"]
    assert (updated["created_at"], updated["updated_at"]) == ("2026-03-01T12:00:00.000000Z", "2026-03-01T13:00:00.000000Z")
    api.post("/__sandbox/clock", json={"advance_seconds": 86400})
    deleted = api.delete(credits_path(business["id"], credit["id"])).json()["data"]
    assert deleted["deleted_at"] == "2026-03-02T13:00:00.000000Z"
    shown = api.get("/__sandbox/clock").json()["data"]
    assert shown == {"mode": "frozen", "now": "2026-03-02T13:00:00.000000Z", "offset_seconds": 0.0}
    api.post("/__sandbox/clock", json={"system": True})


def test_running_clock_from_a_start(api, business):
    api.post("/__sandbox/clock", json={"start_at": "2031-05-05T00:00:00Z"})
    credit = make_credit(api, business)
    assert credit["created_at"].startswith("2031-05-05T00:0")
    api.post("/__sandbox/clock", json={"system": True})
    assert api.get("/__sandbox/clock").json()["data"]["mode"] == "system"


@pytest.mark.parametrize("body, field", [({"frozen_at": "soon"}, "frozen_at"), ({"advance_seconds": "1h"}, "advance_seconds"),
                                         ({"rewind": 5}, "rewind")])
def test_bad_clock_settings_are_400(api, body, field):
    response = api.post("/__sandbox/clock", json=body)
    assert response.status_code == 400 and response.json()["errors"][0]["meta"]["field"] == field


def test_clock_flag_at_start(tmp_path, check):
    server = SandboxProcess(tmp_path, "--clock", "frozen=2026-01-01T00:00:00Z")
    try:
        business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
        with checking_client(server.base_url, check) as client:
            created = make_credit(client, business)
            assert created["created_at"] == created["updated_at"] == "2026-01-01T00:00:00.000000Z"
            other = make_credit(client, business)
            assert other["created_at"] == created["created_at"]
    finally:
        server.stop()


# ---------------------------------------------------------------------------------- journal

def test_the_journal_records_requests_with_their_contract_outcome(api, business):
    api.delete("/__sandbox/requests")
    path = credits_path(business["id"])
    api.get(path, params={"limit": 2})
    api.get(path, params={"limit": 0})
    api.get(path, headers={"Prefer": "code=404"})
    api.get("/not/here")
    entries = api.get("/__sandbox/requests").json()["data"]
    assert [(e["method"], e["status"]) for e in entries] == [("GET", 200), ("GET", 400), ("GET", 404), ("GET", 404)]
    ok, bad, forced, unknown = entries
    assert ok["operation_id"] == "business.invoices.customer-credits.get" and ok["query"] == "limit=2"
    assert (ok["request_validation"], ok["response_validation"]) == ("pass", "pass")
    assert bad["request_validation"] == "fail" and "limit" in bad["error"]
    assert forced["forced"] == "Prefer: code=404"
    assert unknown["operation_id"] is None and unknown["request_validation"] == "skipped"
    assert all(e["duration_ms"] >= 0 and e["namespace"] == "default" for e in entries)
    assert "Authorization" not in str(entries) and "Bearer" not in str(entries)


def test_journal_filters_and_clearing(api, job, business):
    api.delete("/__sandbox/requests", params={"namespace": "*"})
    path = credits_path(business["id"])
    credit = make_credit(api, business)
    api.delete(credits_path(business["id"], credit["id"]))
    api.get(path, params={"limit": 0})
    job.get(path)
    query = lambda **params: api.get("/__sandbox/requests", params=params).json()["data"]  # noqa: E731
    assert [e["method"] for e in query(method="DELETE")] == ["DELETE"]
    assert [e["status"] for e in query(contract="fail")] == [400]
    assert len(query(operation_id="business.invoices.customer-credits.post")) == 1
    assert [e["path"] for e in query(path=credit["id"])] == [credits_path(business["id"], credit["id"])]
    assert len(query()) == 3 and len(query(namespace="job-17")) == 1 and len(query(namespace="*")) == 4
    first = query()[0]["id"]
    assert len(query(after=first)) == 2 and len(query(limit=1)) == 1
    assert api.delete("/__sandbox/requests").json()["data"]["cleared"] == 3
    assert query() == [] and len(query(namespace="job-17")) == 1


def test_the_journal_is_bounded(tmp_path):
    server = SandboxProcess(tmp_path, "--journal-size", "5")
    try:
        for _ in range(12):
            httpx.get(f"{server.base_url}/nothing")
        entries = httpx.get(f"{server.base_url}/__sandbox/requests").json()["data"]
        assert len(entries) == 5 and entries[-1]["id"] == 12
    finally:
        server.stop()


def test_every_response_says_whether_it_passed_the_contract(api, business):
    checked = api.get(credits_path(business["id"]))
    assert checked.headers["x-sandbox-contract"] == "request=pass; response=pass"
    rejected = api.get(credits_path(business["id"]), params={"limit": "x"})
    assert rejected.headers["x-sandbox-contract"] == "request=fail; response=pass"
    for path in ("/__sandbox/health", "/nowhere", "/ui/"):
        assert api.get(path).headers["x-sandbox-contract"] == "request=skipped; response=skipped"


# ---------------------------------------------------------------------------------- rate limit

def test_rate_limit_headers_and_429(tmp_path, check):
    server = SandboxProcess(tmp_path, "--rate-limit", "3")
    try:
        business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
        path = credits_path(business["id"])
        with checking_client(server.base_url, check, headers={"Authorization": "Bearer one"}) as one, \
                checking_client(server.base_url, check, headers={"Authorization": "Bearer two"}) as two:
            # At least ten requests, and on until one is refused: a slow machine may spread them over
            # several one-second buckets, so how many pass is not fixed; what each bucket does is.
            responses = []
            while len(responses) < 10 or all(r.status_code == 200 for r in responses):
                assert len(responses) < 200, "200 requests never exceeded 3 per second"
                responses.append(one.get(path))
            # The bucket a response came from is the one its X-RateLimit-Reset names (the server takes
            # both from the same reading of its clock), so group by it instead of guessing the wall clock.
            buckets: dict[str, list[httpx.Response]] = {}
            for response in responses:
                assert response.headers["x-ratelimit-limit"] == "3"
                buckets.setdefault(response.headers["x-ratelimit-reset"], []).append(response)
            assert [int(reset) for reset in buckets] == sorted(int(reset) for reset in buckets)
            for bucket in buckets.values():
                for position, response in enumerate(bucket):
                    if position < 3:  # a fresh bucket lets three through, counting down
                        assert response.status_code == 200, response.text
                        assert response.headers["x-ratelimit-remaining"] == str(2 - position)
                        assert "retry-after" not in response.headers
                        continue
                    assert response.status_code == 429, f"request {position + 1} in one second passed"
                    assert response.headers["x-ratelimit-remaining"] == "0"
                    assert response.headers["x-sandbox-contract"] == "request=pass; response=pass"
                    assert int(response.headers["retry-after"]) == 1
                    [error] = response.json()["errors"]
                    assert error["type"] == "RateLimited" and "3 requests per second" in error["description"]
            # Another token has its own bucket.
            assert two.get(path).status_code == 200
            # Without a token the answer is 401, not 429.
            assert httpx.get(server.base_url + path).status_code == 401
    finally:
        server.stop()


def test_the_bucket_refills_when_the_second_turns():
    """The limiter's own arithmetic on a clock the test holds: refused at 100.999, refilled at 101.0."""
    clock = [100.2]
    limiter = RateLimiter(2, now=lambda: clock[0])
    assert [limiter.take("t")[0] for _ in range(3)] == [True, True, False]
    clock[0] = 100.999
    allowed, headers = limiter.take("t")
    assert not allowed and headers["Retry-After"] == "1" and headers["X-RateLimit-Reset"] == "101"
    assert limiter.take("other")[0], "each token has its own bucket"
    clock[0] = 101.0
    allowed, headers = limiter.take("t")
    assert allowed and headers["X-RateLimit-Remaining"] == "1" and headers["X-RateLimit-Reset"] == "102"


# ---------------------------------------------------------------------------------- hardening

@pytest.mark.parametrize("body", [{"start_at": "9999-12-31T23:59:59Z"}, {"frozen_at": "0001-01-01T00:00:00+01:00"},
                                  {"frozen_at": "2026-01-01T00:00:00Z", "advance_seconds": "x"},
                                  {"system": True, "frozen_at": "nope"}, {"advance_seconds": 1e300}])
def test_a_refused_clock_setting_changes_nothing(api, body):
    api.post("/__sandbox/clock", json={"frozen_at": "2026-06-01T00:00:00Z"})
    response = api.post("/__sandbox/clock", json=body)
    assert response.status_code == 400, response.text
    assert api.get("/__sandbox/clock").json()["data"]["now"] == "2026-06-01T00:00:00.000000Z"
    api.post("/__sandbox/clock", json={"system": True})


def test_the_clock_cannot_be_advanced_out_of_range(api, business):
    refused = 0
    for _ in range(30):
        refused += api.post("/__sandbox/clock", json={"advance_seconds": 1e10}).status_code == 400
    assert refused > 0
    assert api.get("/__sandbox/clock").status_code == 200
    assert api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                        "line_items": [stable_line("SALES")]}).status_code == 201
    api.post("/__sandbox/clock", json={"system": True})


def test_two_namespace_headers_are_400(sandbox, business):
    response = httpx.get(sandbox.base_url + credits_path(business["id"]),
                         headers=[("Authorization", "Bearer t"), (NS, "nsa"), (NS, "nsb")])
    assert response.status_code == 400 and response.json()["errors"][0]["meta"]["field"] == NS


@pytest.mark.parametrize("raw", [b'{"code": 1e400}', b'{"delay": 1e400, "code": 500}', b"[" * 100000])
def test_odd_control_bodies_are_400(api, raw):
    for method, path in (("POST", "/__sandbox/rules"), ("PUT", "/__sandbox/state"), ("POST", "/__sandbox/clock")):
        response = api.request(method, path, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, response.text)


def test_journal_reads_do_not_create_namespaces_and_deleting_one_clears_its_entries(api, job, business):
    job.get(credits_path(business["id"]))
    peek = httpx.get(f"{api.base_url}/__sandbox/requests", headers={NS: "never-used"})
    assert peek.status_code == 200 and peek.json()["data"] == []
    assert "never-used" not in {n["namespace"] for n in api.get("/__sandbox/namespaces").json()["data"]}
    assert api.get("/__sandbox/requests", params={"namespace": "job-17"}).json()["data"]
    api.delete("/__sandbox/namespaces/job-17")
    assert api.get("/__sandbox/requests", params={"namespace": "job-17"}).json()["data"] == []
    assert api.get("/__sandbox/requests", params={"limit": -2}).status_code == 400


def test_the_journal_names_handler_errors(api, business):
    api.delete("/__sandbox/requests")
    api.get(credits_path(business["id"], "3c90c3cc-0d44-4b50-8888-8dd25736052a"))
    others = [c for c in business["customers"] if c["external_id"]]
    api.post(credits_path(business["id"]), json={"customer_id": others[0]["id"], "customer_external_id": others[1]["external_id"],
                                                  "line_items": [stable_line("SALES")]})
    missing, unprocessable = api.get("/__sandbox/requests").json()["data"]
    assert missing["status"] == 404 and "not found" in missing["error"] and missing["field"] == "customerCreditId"
    assert unprocessable["status"] == 422 and unprocessable["field"] == "customer_external_id"
