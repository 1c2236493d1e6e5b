"""The store's boundary (sandbox/stores/protocol.py) is the one the code keeps: the memory and the
Redis store each offer every operation of the protocol with its own signature, and the handlers ask a
store for nothing else (they hold no lock of its either)."""

from __future__ import annotations

import inspect
import re

import pytest

from layer_sandbox.stores.memory import MemoryStore
from layer_sandbox.stores.redis_store import RedisStore
from layer_sandbox.stores.protocol import CreditStore
from support import ROOT

OPERATIONS = sorted(name for name, member in vars(CreditStore).items()
                    if inspect.isfunction(member) and not name.startswith("_"))


def test_the_protocol_names_the_api_s_operations():
    assert OPERATIONS == sorted([
        "all_businesses", "archive_customer", "business", "create_credit", "create_customer", "credit",
        "customer", "customers_of",
        "delete_credit", "invoice", "list_credits", "list_customers", "list_invoices", "update_credit",
        "update_customer"])


@pytest.mark.parametrize("implementation", [MemoryStore, RedisStore], ids=["memory", "redis"])
def test_each_store_offers_each_operation_with_the_protocols_signature(implementation):
    for name in OPERATIONS:
        ours, declared = inspect.signature(getattr(implementation, name)), inspect.signature(getattr(CreditStore, name))
        assert list(ours.parameters) == list(declared.parameters), name
        for parameter, expected in declared.parameters.items():
            got = ours.parameters[parameter]
            assert (got.kind, got.default) == (expected.kind, expected.default), (name, parameter)
    assert issubclass(implementation, CreditStore)


def test_handlers_call_nothing_but_the_protocol_on_a_store():
    used = set(re.findall(r"\bstore\.([a-z_]+)", (ROOT / "sandbox" / "handlers.py").read_text()))
    assert used <= set(OPERATIONS), used - set(OPERATIONS)
    assert used & set(OPERATIONS), "the handlers call no store operation at all: the pattern is stale"
