"""Where the contract and the fixtures live, installed or in a checkout.

The wheel carries `openapi.yaml` and `fixtures/` inside the package (see pyproject.toml); a
source checkout or an editable install finds them at the repository root instead.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _resource(name: str) -> Path:
    packaged = _PACKAGE / name
    return packaged if packaged.exists() else _PACKAGE.parent / name


SPEC_PATH = _resource("openapi.yaml")
FIXTURES_DIR = _resource("fixtures")
SCENARIOS_DIR = FIXTURES_DIR / "scenarios"
DEFAULT_SCENARIO = "default"


# The keys of an OpenAPI path item that are operations.
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def parse_yaml(text):
    """YAML text or bytes (the contract, a scenario, the chart of accounts, a published spec),
    parsed with libyaml when it is there: several times faster than PyYAML's pure-Python parser,
    which matters at start-up."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_yaml(path):
    with open(path, "rb") as stream:
        return parse_yaml(stream)


def load_spec(path) -> dict:
    """The contract, `openapi.yaml` or another OpenAPI document."""
    return load_yaml(path)
