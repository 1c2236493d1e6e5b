"""Namespace names and the ways a namespace can be refused: no state, no HTTP, nothing heavy to
import (the proxy and the error helper need these without the store, Faker or the seeding)."""

from __future__ import annotations

import re

DEFAULT_NAMESPACE = "default"
NAMESPACE_HEADER = "X-Sandbox-Namespace"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class NamespaceError(ValueError):
    """A namespace name the sandbox refuses."""


class NamespaceLimit(NamespaceError):
    """One namespace too many (--max-namespaces): the sandbox's limit, not the client's mistake."""


class DefaultNamespace(NamespaceError):
    """The default namespace cannot be deleted (it is where requests without a namespace go)."""


def check_namespace_name(name: str) -> None:
    if not _NAME.match(name):
        raise NamespaceError(
            f"{name[:80]!r} is not a namespace name: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
