"""layer-sandbox: a local, stateful sandbox of Layer's customer-credits API."""

__version__ = "0.1.0"
