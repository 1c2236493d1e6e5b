"""Schemathesis hooks for tests/test_schemathesis.py, loaded by `st run` through
`SCHEMATHESIS_HOOKS=<this file>` (Schemathesis' documented way to add hooks and CLI event handlers).

`filter_failure` drops one kind of false positive of `ensure_resource_availability` (see there).

`Tally`, a CLI event handler, writes a JSON file to the path in `SCHEMATHESIS_TALLY` when the run
ends:

- `requests`: per phase, per operation label (`GET /whoami`), how many requests Schemathesis sent
  and the status codes they were answered with (check probes included, e.g. `ignored_auth`'s);
- `links`: every link the stateful phase followed with the value it extracted actually applied,
  by its transition id (`POST /x -> [201] GetX -> GET /x/{id}`), and whether it was inferred by
  Schemathesis or declared by the contract;
- `unapplied`: how often a link was taken without its value applied (the value was absent from
  the response, or Schemathesis chose to generate the parameter instead);
- `scenarios`: per phase, how many scenarios ended with which status;
- `dropped`: the failures `filter_failure` dropped, by check and reason;
- `samples`: one request and answer for every operation and error status seen (a first look at
  why an operation was refused, without a cassette of the whole run).

It reads the same recorder fields the CLI's own "API Links: N covered" line is computed from.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

import schemathesis
from schemathesis import cli
from schemathesis.engine import events

DROPPED: Counter = Counter()


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure except `ensure_resource_availability`'s (ST302) on a 404 whose errors all
    name a body or query field, not one of the request's path parameters.

    That check calls a 404 right after a create "the created resource is not found" whenever every
    path parameter came from the create's link. It does not read the 404: the contract answers 404
    `SpecifiedIdNotFound` also for an unknown customer, invoice or account that the *body* names
    (`components/examples/CustomerNotFound`, `meta.field: customer_id`), and the stateful phase
    sends such bodies (10% of drawn ids are random). A 404 naming the path's own id (the created
    resource), or one that names no field at all, still fails the run.
    """
    if getattr(failure, "code", None) != "ST302" or response.status_code != 404:
        return True
    try:
        fields = {(error.get("meta") or {}).get("field") for error in response.json()["errors"]}
    except (ValueError, KeyError, TypeError, AttributeError):  # not Layer's error body
        return True
    if None in fields or fields & set(case.path_parameters or {}):
        return True
    DROPPED[f"ensure_resource_availability: 404 names {', '.join(sorted(fields))}"] += 1
    return False


@cli.handler()
class Tally(cli.EventHandler):
    def __init__(self, *args, **params) -> None:
        self.path = os.environ.get("SCHEMATHESIS_TALLY")
        self.requests: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.links: dict[str, bool] = {}
        self.unapplied: Counter = Counter()
        self.scenarios: dict[str, Counter] = defaultdict(Counter)
        self.samples: dict[str, dict] = {}

    def handle_event(self, ctx, event) -> None:
        if isinstance(event, events.ScenarioFinished):
            self._scenario(event)
        elif isinstance(event, events.EngineFinished):
            self._write()

    def _scenario(self, event) -> None:
        phase = getattr(event.phase, "value", str(event.phase))
        recorder = event.recorder
        self.scenarios[phase][getattr(event.status, "value", str(event.status))] += 1
        for case_id, interaction in recorder.interactions.items():
            node = recorder.cases.get(case_id)
            label = node.value.operation.label if node is not None else recorder.label
            status = interaction.response.status_code if interaction.response is not None else "no response"
            self.requests[phase][label][str(status)] += 1
            key = f"{label} {status}"
            if interaction.response is not None and status >= 400 and key not in self.samples:
                request = interaction.request
                self.samples[key] = {
                    "request": f"{request.method} {request.uri} {(request.body or b'')[:300]!r}",
                    "response": interaction.response.content[:300].decode("utf-8", "replace"),
                }
        for node in recorder.cases.values():
            transition = getattr(node, "transition", None)
            if transition is None:
                continue
            if getattr(node, "is_transition_applied", False):
                self.links[transition.id] = bool(getattr(transition, "is_inferred", False))
            else:
                self.unapplied[transition.id] += 1

    def _write(self) -> None:
        if not self.path:
            return
        with open(self.path, "w") as out:
            json.dump({"requests": self.requests, "links": self.links, "unapplied": self.unapplied,
                       "scenarios": self.scenarios, "dropped": DROPPED,
                       "samples": self.samples}, out, indent=1, sort_keys=True)
