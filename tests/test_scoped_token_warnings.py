"""`--token T=BUSINESS_ID` naming a business the sandbox does not hold is warned about at start."""

from __future__ import annotations

import uuid

import httpx

from support import SandboxProcess, credits_path


def test_a_token_scoped_to_a_business_not_held_is_warned_about_without_the_token(sandbox, tmp_path):
    # The shared sandbox runs the same scenario and seed, so it holds the same businesses.
    seeded = httpx.get(f"{sandbox.base_url}/__sandbox/businesses").json()["data"][0]["id"]
    unknown = str(uuid.uuid4())
    stray, odd, good = (f"secret-{uuid.uuid4().hex}" for _ in range(3))
    server = SandboxProcess(tmp_path, "--token", f"{stray}={unknown}", "--token", f"{odd}=acme-inc",
                            "--token", f"{good}={seeded.upper()}")
    try:
        health = httpx.get(f"{server.base_url}/__sandbox/health")
        path = f"{server.base_url}{credits_path(seeded)}"
        as_stray = httpx.get(path, headers={"Authorization": f"Bearer {stray}"})
        as_good = httpx.get(path, headers={"Authorization": f"Bearer {good}"})
    finally:
        server.stop()
    assert health.status_code == 200
    # What the warning announces: the token is accepted, and its requests answer as for an unknown business.
    assert as_stray.status_code == 404 and as_good.status_code == 200

    warnings = [line for line in server.stderr.splitlines() if "--token" in line]
    assert len(warnings) == 2, server.stderr
    assert f"'{unknown}'" in warnings[0] and "not one of the" in warnings[0] and "404" in warnings[0]
    assert "'acme-inc'" in warnings[1] and "not a UUID" in warnings[1] and "404" in warnings[1]
    assert not any(seeded in line.lower() for line in warnings)
    for token in (stray, odd, good):
        assert token not in server.stdout and token not in server.stderr
    assert "Traceback" not in server.stderr
