"""`layer-sandbox verify-pact`: each interaction of a consumer's pact checked twice, each told apart.

1. Against the contract (`sandbox.pactcontract`): would `openapi.yaml` accept the request, and
   allow the response the consumer expects? Nothing runs.
2. Against the sandbox's behaviour: Pact's own verifier (pact-python's `Verifier`, the Rust Pact
   FFI: its matching rules, its mismatch messages) replays the interaction against a sandbox, in a
   namespace made fresh for each interaction, after its provider states were set up there
   (`sandbox.pactstates`).

One verifier run per pact file, not per interaction (a run costs about half a second of its own):
the namespace is made again at the first state of each interaction, which Pact sends after the
previous interaction's teardown. A state that cannot be set up never fails Pact's state call (the
FFI would retry it for two minutes): it is noted, the interaction still replays, and the report
blames the state.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

from .pactcontract import PactContractCheck
from .pactfile import Interaction, PactFile
from .pactstates import Setup, StateBook, StateError
from .testing import ControlClient

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class Check:
    result: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"result": self.result, "problems": self.problems, "notes": self.notes}


@dataclass
class InteractionReport:
    interaction: Interaction
    contract: Check
    sandbox: Check

    @property
    def result(self) -> str:
        if SKIP in (self.contract.result, self.sandbox.result) and FAIL not in (self.contract.result,
                                                                                self.sandbox.result):
            return SKIP
        return FAIL if FAIL in (self.contract.result, self.sandbox.result) else PASS


@dataclass
class PactReport:
    pact: PactFile
    interactions: list[InteractionReport]
    seconds: float

    def count(self, result: str) -> int:
        return sum(1 for i in self.interactions if i.result == result)


@dataclass
class Unreadable:
    path: Path
    reason: str


# ---------------------------------------------------------------------------- the replay


class _States:
    """Pact's state calls for one pact file, turned into fresh namespaces and fixture calls.

    Pact calls setup for each state of an interaction in order (or once with the empty state
    when it has none), replays it, then calls teardown for each: the first setup after a
    teardown (or the first of all) starts the next interaction."""

    def __init__(self, book: StateBook, setup_for) -> None:
        self.book = book
        self.setup_for = setup_for  # the interaction's position among the replayed -> a Setup
        self.problems: dict[int, list[str]] = {}
        self.index = -1
        self.between = True
        self.setup: Setup | None = None
        self.lock = threading.Lock()

    def __call__(self, state: str, action: str, parameters: dict | None) -> None:
        with self.lock:
            try:
                if action == "teardown":
                    self.between = True
                    return
                if self.between:
                    self.between = False
                    self.index += 1
                    self.setup = self.setup_for(self.index)
                    self.setup.fresh()
                if state:
                    self.book.apply(self.setup, state, parameters)
            except StateError as exc:
                self.problems.setdefault(self.index, []).append(f"provider state {state!r}: {exc}")
            except Exception as exc:  # noqa: BLE001 - never fail Pact's state call: it would retry for minutes
                self.problems.setdefault(self.index, []).append(
                    f"provider state {state!r}: {type(exc).__name__}: {exc}")


def _mismatch_lines(mismatch: dict) -> list[str]:
    if mismatch.get("type") == "error":
        return [mismatch.get("message") or "the verifier failed this interaction"]
    lines = []
    for item in mismatch.get("mismatches") or []:
        kind = item.get("type", "")
        text = item.get("mismatch") or f"expected {item.get('expected')!r} but was {item.get('actual')!r}"
        if kind == "StatusMismatch":
            lines.append(f"status: {text}")
        elif kind == "BodyMismatch":
            lines.append(f"body {item.get('path') or '$'}: {text}")
        elif kind == "HeaderMismatch":
            lines.append(f"header {item.get('key')}: {text}")
        elif kind == "BodyTypeMismatch":
            lines.append(f"body: {text}")
        else:
            lines.append(f"{kind or 'mismatch'}{' ' + str(item.get('path') or item.get('key') or '')}: {text}".strip())
    return lines or ["the verifier failed this interaction"]


@contextlib.contextmanager
def _quiet():
    """The FFI prints its own report on the process's stdout, and pact-python's state server logs
    each call on stderr: both go to a file for the length of a run (ours is printed after)."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class PactRefused(Exception):
    """Pact's verifier would not load the file (it reports why), so nothing was replayed."""


STATE_TIMEOUT_MS = 60_000  # pact-python's default (5 s) also bounds each state call: a big seed takes longer


def replay(pact: PactFile, base_url: str, control: ControlClient, book: StateBook) -> list[Check]:
    """Pact's verifier over the pact's HTTP interactions, against `base_url`: one Check each.
    PactRefused when the verifier refused the file itself."""
    os.environ.setdefault("PACT_DO_NOT_TRACK", "true")  # the FFI reports usage unless told not to
    import httpx
    from pact import Verifier

    interactions = pact.http_interactions
    if not interactions:
        return []
    # The verifier's requests reach the namespace through the URL (`/__ns/NAME`), fixed for the
    # run: one name per pact file, made afresh for each interaction.
    namespace = f"pact-{secrets.token_hex(4)}"
    api = httpx.Client(base_url=base_url, timeout=30.0)
    states = _States(book, lambda index: Setup(control, namespace, api=api))
    host = urlsplit(base_url).hostname
    with tempfile.TemporaryDirectory(prefix="layer-sandbox-pact-") as folder:
        source = Path(folder) / pact.path.name
        source.write_text(json.dumps(pact.replayable()))
        verifier = (Verifier(pact.provider, host=host)
                    .add_transport(url=f"{base_url.rstrip('/')}/__ns/{namespace}")
                    .add_source(str(source))
                    .state_handler(states, teardown=True)
                    .set_request_timeout(STATE_TIMEOUT_MS)
                    .set_coloured_output(enabled=False))
        try:
            with _quiet():
                try:
                    verifier.verify()
                except RuntimeError:  # what pact-python raises when any interaction failed
                    pass
            results = verifier.results
        finally:
            api.close()
            control.request("DELETE", f"/__sandbox/namespaces/{namespace}")
    found = list(results.get("interactionResults") or [])
    if not found:
        refusals = [e.get("mismatch", {}).get("message") or e.get("interaction") for e in results.get("errors") or []]
        if refusals:
            raise PactRefused("Pact's verifier refused it: " + "; ".join(str(r) for r in refusals if r)[:2000])
    checks = []
    for index, interaction in enumerate(interactions):
        result = _result_for(interaction, index, found)
        problems = list(states.problems.get(index, []))
        passed = result is not None and str(result.get("result")).lower() == "ok"
        if result is None:
            checks.append(Check(FAIL, problems + ["Pact's verifier reported nothing for this interaction"]))
        elif passed and not problems:
            checks.append(Check(PASS))
        else:
            lines = [] if passed else _mismatch_lines(result.get("mismatch") or {})
            notes = ["the replay ran without the state that failed, so its mismatches may follow from that"] \
                if problems and lines else []
            checks.append(Check(FAIL, problems + lines, notes))
    return checks


def _result_for(interaction: Interaction, index: int, found: list[dict | None]) -> dict | None:
    """The verifier's result for the `index`-th replayed interaction. Pact reports them in the
    file's order: the one at that position when its description agrees, else the first unused
    one with the interaction's description and provider states, else with its description."""
    def take(n: int) -> dict:
        result, found[n] = found[n], None
        return result

    def described(result) -> bool:
        return result is not None and result.get("description") == interaction.description

    if index < len(found) and (described(found[index]) or (
            found[index] is not None and not interaction.description)):
        return take(index)
    names = [s.name for s in interaction.states]
    for exact in (True, False):
        for n, result in enumerate(found):
            if described(result) and (not exact or list(result.get("providerStates") or []) == names):
                return take(n)
    return None


# ---------------------------------------------------------------------------- the whole run


def verify(pacts: list[PactFile], *, contract: PactContractCheck, book: StateBook, base_url: str,
           control: ControlClient) -> tuple[list[PactReport], list[Unreadable]]:
    """A report per pact; the files Pact's verifier refused apart (as files that are not pacts)."""
    reports, refused = [], []
    for pact in pacts:
        started = time.perf_counter()
        try:
            replayed = iter(replay(pact, base_url, control, book))
        except PactRefused as exc:
            refused.append(Unreadable(pact.path, str(exc)))
            continue
        items = []
        for interaction in pact.interactions:
            if interaction.kind != "http":
                skipped = Check(SKIP, notes=["a message interaction: the sandbox serves HTTP only"])
                items.append(InteractionReport(interaction, skipped, skipped))
                continue
            findings, notes = contract.check(interaction)
            judged = Check(FAIL if findings else PASS, [str(f) for f in findings], notes)
            items.append(InteractionReport(interaction, judged, next(replayed)))
        reports.append(PactReport(pact, items, time.perf_counter() - started))
    return reports, refused


def exit_status(reports: list[PactReport], unreadable: list[Unreadable]) -> int:
    if unreadable:
        return 2
    return 1 if any(r.count(FAIL) for r in reports) else 0


# ---------------------------------------------------------------------------- reports


def _totals(reports: list[PactReport]) -> dict:
    every = [i for r in reports for i in r.interactions]
    return {"pacts": len(reports), "interactions": len(every),
            "passed": sum(1 for i in every if i.result == PASS), "failed": sum(1 for i in every if i.result == FAIL),
            "skipped": sum(1 for i in every if i.result == SKIP),
            "seconds": round(sum(r.seconds for r in reports), 3)}


def text_report(reports: list[PactReport], unreadable: list[Unreadable]) -> str:
    lines = []
    for problem in unreadable:
        lines += [f"{problem.path}: {problem.reason}", ""]
    for report in reports:
        pact = report.pact
        lines.append(f"{pact.path}: {pact.consumer} -> {pact.provider}, pact specification {pact.specification}, "
                     f"{len(pact.interactions)} interaction{'s' if len(pact.interactions) != 1 else ''}")
        for item in report.interactions:
            lines.append(f"  {item.result.upper():4}  {item.interaction.title}")
            for name, check in (("contract", item.contract), ("sandbox", item.sandbox)):
                if item.result == SKIP:
                    lines += [f"          {note}" for note in check.notes[:1]]
                    break
                if check.result == PASS and not check.notes:
                    continue
                head = f"          {name + ':':9} "
                for n, problem in enumerate(check.problems or ["pass"]):
                    lines.append((head if n == 0 else " " * len(head)) + problem)
                lines += [" " * len(head) + f"({note})" for note in check.notes]
        lines.append("")
    totals = _totals(reports)
    lines.append(f"{totals['interactions']} interaction{'s' if totals['interactions'] != 1 else ''} in "
                 f"{totals['pacts']} pact{'s' if totals['pacts'] != 1 else ''}: {totals['passed']} passed, "
                 f"{totals['failed']} failed, {totals['skipped']} skipped ({totals['seconds']:.2f} s)"
                 + (f"; {len(unreadable)} file{'s' if len(unreadable) != 1 else ''} not a pact" if unreadable else ""))
    return "\n".join(lines)


def json_report(reports: list[PactReport], unreadable: list[Unreadable]) -> str:
    document = {
        "pacts": [{
            "file": str(r.pact.path), "consumer": r.pact.consumer, "provider": r.pact.provider,
            "specification": r.pact.specification, "seconds": round(r.seconds, 3),
            "interactions": [{
                "description": i.interaction.description,
                "provider_states": [{"name": s.name, "params": s.params} for s in i.interaction.states],
                "result": i.result, "contract": i.contract.as_json(), "sandbox": i.sandbox.as_json(),
            } for i in r.interactions],
        } for r in reports],
        "not_pacts": [{"file": str(u.path), "reason": u.reason} for u in unreadable],
        "summary": _totals(reports),
        "exit_status": exit_status(reports, unreadable),
    }
    return json.dumps(document, indent=2)


def junit_report(reports: list[PactReport], unreadable: list[Unreadable]) -> bytes:
    """A test suite per pact and a test case per interaction and check (`... [contract]`,
    `... [sandbox]`): CI shows which of the two failed."""
    suites = ElementTree.Element("testsuites", name="layer-sandbox verify-pact")
    for problem in unreadable:
        suite = ElementTree.SubElement(suites, "testsuite", name=str(problem.path), tests="1", failures="0", errors="1")
        case = ElementTree.SubElement(suite, "testcase", classname="pact", name=str(problem.path))
        ElementTree.SubElement(case, "error", message=problem.reason[:500]).text = problem.reason
    for report in reports:
        pact = report.pact
        cases = [(item, name, check) for item in report.interactions
                 for name, check in (("contract", item.contract), ("sandbox", item.sandbox))]
        suite = ElementTree.SubElement(
            suites, "testsuite", name=f"{pact.consumer} -> {pact.provider} ({pact.path.name})", tests=str(len(cases)),
            failures=str(sum(1 for *_, c in cases if c.result == FAIL)), errors="0",
            skipped=str(sum(1 for *_, c in cases if c.result == SKIP)), time=f"{report.seconds:.3f}")
        for item, name, check in cases:
            case = ElementTree.SubElement(suite, "testcase", classname=f"{pact.consumer}.{pact.provider}",
                                          name=f"{item.interaction.title} [{name}]")
            if check.result == FAIL:
                failure = ElementTree.SubElement(case, "failure", message=check.problems[0][:500])
                failure.text = "\n".join(check.problems + [f"({note})" for note in check.notes])
            elif check.result == SKIP:
                ElementTree.SubElement(case, "skipped", message="; ".join(check.notes))
    return ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True)
