"""What a scenario file may hold: every key known, every value of the right kind.

A typo such as `per_business: {credit: 5}` used to be ignored, so the sandbox seeded something
other than what the file seemed to ask, silently; a wrong value (`credits: -1`, `tagged_share:
1.5`, `credits: five`) seeded nonsense or failed deep inside the seeder with a traceback. Each
file is checked on its own keys as it is read, before `extends:` merges it with another, so that
a message names the file the mistake is in; the merged result is then checked for completeness.
The messages say where (`per_business.credit`, `businesses[0].invoice`) and what is expected.
"""

from __future__ import annotations

from faker.config import AVAILABLE_LOCALES
from jsonschema import Draft4Validator  # draft 4: an integer is never a float such as 2.0

from .timestamps import parse_timestamp

_COUNT = {"type": "integer", "minimum": 0, "description": "a count (an integer of 0 or more)"}
_SHARE = {"type": "number", "minimum": 0, "maximum": 1, "description": "a share from 0 to 1"}

# What each business is seeded with: `per_business`, or one entry of a `businesses` list.
BUSINESS = {
    "type": "object",
    "additionalProperties": False,
    "description": "a mapping of what each business holds",
    "properties": {
        "customers": _COUNT,
        "customers_without_external_id": _COUNT,
        "invoices": _COUNT,
        "credits": _COUNT,
        "allocations": {
            "type": "object",
            "additionalProperties": False,
            "description": "a mapping of the shares allocated in part and in full",
            "properties": {"partial": _SHARE, "full": _SHARE},
        },
        "tagged_share": _SHARE,
        "deleted": _COUNT,
    },
}
FILE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string", "description": "a string"},
        "extends": {"type": "string", "description": "a scenario name or a path to a scenario file"},
        "locale": {"type": "string", "description": "a Faker locale such as en_US"},
        "epoch": {"type": "string", "description": "an ISO 8601 date-time in quotes, such as '2026-01-01T00:00:00Z'"},
        "history_days": {"type": "integer", "minimum": 1, "description": "a number of days (an integer of 1 or more)"},
        "chart_of_accounts": {"type": "string", "description": "a path to a chart of accounts file"},
        "businesses": {
            "type": ["integer", "array"],
            "minimum": 0,
            "items": {**BUSINESS, "type": ["object", "null"]},
            "description": "a count of businesses, or a list with one entry (a mapping) per business",
        },
        "per_business": BUSINESS,
        "fixtures": {
            "type": "array",
            "items": {"type": "object"},
            "description": ("a list of exact records to add after seeding, each as POST /__sandbox/fixtures takes "
                            "them (`business: 0` names the first business)"),
        },
    },
}
# What the file and the files it extends must give between them.
REQUIRED = ("locale", "epoch", "history_days", "chart_of_accounts", "businesses", "per_business")
_VALIDATOR = Draft4Validator(FILE)


def _where(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problems(document: dict) -> list[str]:
    """What is wrong with one scenario file's own mapping (before any merge), in file order."""
    found = []
    for error in sorted(_VALIDATOR.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator == "additionalProperties":
            known = sorted(error.schema["properties"])
            for key in sorted(map(str, set(error.instance) - set(known))):
                found.append(f"unknown key {_where([*error.absolute_path, key])} (known there: {', '.join(known)})")
        else:
            found.append(f"{_where(error.absolute_path)} must be {error.schema.get('description', error.message)}, "
                         f"not {_shown(error.instance)}")
    if found:
        return found
    if "epoch" in document:
        try:
            parse_timestamp(document["epoch"])
        except (ValueError, OverflowError):
            found.append(f"epoch must be {FILE['properties']['epoch']['description']}, not {_shown(document['epoch'])}")
    if "locale" in document and document["locale"] not in AVAILABLE_LOCALES:
        found.append(f"locale {document['locale']!r} is not a Faker locale (such as en_US, de_DE, fr_FR)")
    return found


def incomplete(merged: dict) -> list[str]:
    """What a scenario lacks once merged with the files it extends, or cannot seed."""
    found = [f"missing key {key}" for key in REQUIRED if key not in merged]
    if "per_business" in merged:
        found += [f"missing key per_business.{key}" for key in BUSINESS["properties"] if key not in merged["per_business"]]
    return found


def unseedable(businesses: list[dict]) -> list[str]:
    """Businesses the seeder could not fill: invoices and credits each belong to a customer."""
    return [f"businesses[{index}]: {business['invoices']} invoices and {business['credits']} credits need at "
            f"least one customer" for index, business in enumerate(businesses)
            if not business["customers"] and (business["invoices"] or business["credits"])]
