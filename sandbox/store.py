"""The store's vocabulary, for the code outside `sandbox.stores`: its errors and filters, the id
generator, the limits a write is held to, and the memory store (`Store`), today's only one.

A re-export module, so that the HTTP layer, snapshots, seeding and persistence keep one import
while the stores live in their own package (see `sandbox.stores`).
"""

from .stores.memory import (  # noqa: F401 - re-exported
    ARCHIVED,
    CUSTOMER_FIELDS,
    INT64_MAX,
    CreditFilters,
    IdSource,
    InvoiceFilters,
    MemoryStore,
    Store,
    metadata_problem,
    timestamp_input,
)
from .stores.protocol import (  # noqa: F401
    CreditStore,
    InvalidInput,
    NotFound,
    RuleViolation,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
