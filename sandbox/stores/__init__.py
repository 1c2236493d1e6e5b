"""Where a namespace's data lives, behind one boundary.

`protocol` says what the HTTP layer (handlers, control routes, fixtures, snapshots) may ask of a
store: the reads, lists and writes of Layer's customer-credits API, and the errors a refusal is
told with. `memory` is the embedded default, all in the process; `redis_store` keeps a namespace's
data in Redis behind the same protocol, so that several processes and replicas serve one sandbox
(`redis_namespaces`: namespaces; `redis_books`: tokens, rules, rate limits, the journal). The
user's view is docs/redis.md, the design docs/design/redis-store.md. Code outside this package
imports the vocabulary from `sandbox.store` (the errors, filters, the id generator) and reaches a
store through its namespace.
"""
