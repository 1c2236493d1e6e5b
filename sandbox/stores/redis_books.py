"""What a sandbox keeps beside the namespaces' data, in Redis, so that every worker and replica
sees the same: issued tokens, each namespace's rules, rate-limit buckets and the request journal.

Each class has the face of its in-process counterpart (`auth.TokenBook`, `rules.RuleBook`,
`ratelimit.RateLimiter`, `journal.Journal`), so that the HTTP layer does not know which it holds.
Keys live under the sandbox's prefix `P`; see docs/design/redis-store.md for the layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict
from datetime import UTC, datetime

import orjson
import redis

from ..journal import BODY_LIMIT, _decode, select
from ..ratelimit import RateLimiter
from ..rules import Directive, Rule, RuleBook
from ..timestamps import format_timestamp, parse_timestamp
from .redis_store import mapped, unavailable_reason

log = logging.getLogger("layer_sandbox")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()  # tokens are never kept in the clear


# ------------------------------------------------------------------------------ tokens

class RedisTokenBook:
    """Issued tokens as `P:tok:{sha256}` (the token itself is never stored), kept in Redis for a
    day past their lifetime on the host's clock; they expire on their namespace's virtual clock."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    @mapped
    def get(self, token: str):
        from ..auth import TOKEN_PREFIX, Client, Issued

        if not token.startswith(TOKEN_PREFIX):  # not one the sandbox issued: no round trip
            return None
        raw = self.client.get(f"{self.prefix}:tok:{_digest(token)}")
        if raw is None:
            return None
        fields = json.loads(raw)
        return Issued(Client(fields["client_id"], fields["client_name"]), fields["namespace"], None,
                      parse_timestamp(fields["expires_at"]), fields["business_id"], fields["nsid"])

    @mapped
    def put(self, token: str, issued, lifetime: int) -> None:
        fields = {"client_id": issued.client.id, "client_name": issued.client.name, "namespace": issued.namespace,
                  "nsid": issued.nsid, "expires_at": format_timestamp(issued.expires_at),
                  "business_id": issued.business_id}
        self.client.set(f"{self.prefix}:tok:{_digest(token)}", json.dumps(fields), ex=lifetime + 86400)


# ------------------------------------------------------------------------------ rules

# The first use of a rule, atomically: its hits counted, its remaining uses counted down, and
# the rule removed with its last use; nil when another process removed it first.
TAKE_RULE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
local hits = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':hits', 1)
local left = redis.call('HGET', KEYS[1], ARGV[1] .. ':left')
if left then
  left = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':left', -1)
  if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1], ARGV[1] .. ':hits', ARGV[1] .. ':left') end
end
return {hits, left}
"""


def rule_keys(prefix: str, namespace: str) -> tuple[str, str]:
    """The namespace's rules hash, and its rule counter (which outlives a reset, as in memory)."""
    return f"{prefix}:rules:{namespace}", f"{prefix}:ruleseq:{namespace}"


class RedisRuleBook(RuleBook):
    """One namespace's rules in the hash `P:rules:{name}`: `{id}` the rule as JSON, `{id}:hits`,
    `{id}:left`. The request's namespace read brings them along (`fields`), so matching costs no
    extra round trip unless a rule matches."""

    def __init__(self, client: redis.Redis, prefix: str, namespace: str, fields: dict | None, take) -> None:
        super().__init__()
        self.client = client
        self.key, self.seq = rule_keys(prefix, namespace)
        self._fields = fields
        self._take = take

    @mapped
    def _new_rule(self, directive: Directive, method, path: str, count, operations) -> Rule:
        rule = Rule(f"rule-{self.client.incr(self.seq)}", directive, method, path, count, operations=operations)
        spec = {"directive": asdict(directive), "method": method, "path": path,
                "operations": None if operations is None else list(operations)}
        mapping = {rule.id: json.dumps(spec), f"{rule.id}:hits": 0}
        if count is not None:
            mapping[f"{rule.id}:left"] = count
        self.client.hset(self.key, mapping=mapping)
        return rule

    def _read_rules(self, fields: dict | None = None) -> list[Rule]:
        fields = self.client.hgetall(self.key) if fields is None else fields
        text = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
        rules = []
        for name, value in text.items():
            if ":" in name:
                continue
            spec = json.loads(value)
            left = text.get(f"{name}:left")
            rules.append(Rule(name, Directive(**spec["directive"]), spec["method"], spec["path"],
                              None if left is None else int(left), int(text.get(f"{name}:hits", 0)),
                              None if spec["operations"] is None else tuple(spec["operations"])))
        return sorted(rules, key=lambda rule: int(rule.id.split("-")[1]))

    @mapped
    def match(self, method: str, path: str, operation_id: str | None = None) -> Rule | None:
        for rule in self._read_rules(self._fields):
            if rule.matches(method, path, operation_id):
                taken = self._take(keys=[self.key], args=[rule.id])
                if taken is None:  # used up or removed by another request meanwhile
                    continue
                rule.hits, rule.remaining = int(taken[0]), None if taken[1] is None else int(taken[1])
                return rule
        return None

    @mapped
    def list(self) -> list[dict]:
        return [rule.to_dict() for rule in self._read_rules()]

    @mapped
    def remove(self, rule_id: str) -> bool:
        return bool(self.client.hdel(self.key, rule_id, f"{rule_id}:hits", f"{rule_id}:left"))

    @mapped
    def clear(self) -> None:
        self.client.delete(self.key)


# ------------------------------------------------------------------------------ rate limit

class RedisRateLimiter(RateLimiter):
    """Layer's per-token bucket, counted in Redis (`P:rl:{sha256}:{second}`, gone after 2 s) so
    that the limit holds across workers and replicas (whose clocks NTP keeps together)."""

    def __init__(self, per_second: int, client: redis.Redis, prefix: str, now=None) -> None:
        super().__init__(per_second, **({"now": now} if now else {}))
        self.client, self.prefix = client, prefix

    @mapped
    def take(self, token: str) -> tuple[bool, dict[str, str]]:
        now = self._now()
        key = f"{self.prefix}:rl:{_digest(token)}:{math.floor(now)}"
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 2)
        count, _ = pipe.execute()
        allowed = count <= self.limit
        return allowed, self._headers(now, max(0, self.limit - count), refused=not allowed)


# ------------------------------------------------------------------------------ journal

# An entry added (with its request body, the first part of its response body, and whether either
# was cut), its id drawn, the oldest entries retired past `size`. ARGV[1] is the entry's JSON
# without its opening brace, so the id goes first.
JOURNAL_ADD = """
local p = ARGV[4]
local id = redis.call('INCR', p .. 'seq')
redis.call('SET', p .. 'e:' .. id, '{"id":' .. id .. ',' .. ARGV[1])
if ARGV[2] ~= '' then redis.call('SET', p .. 'rq:' .. id, ARGV[2]) end
if ARGV[5] ~= '' then redis.call('SET', p .. 'rs:' .. id, ARGV[5]) end
if ARGV[6] == '1' then redis.call('SET', p .. 'tr:' .. id, 1) end
redis.call('RPUSH', p .. 'ids', id)
local size = tonumber(ARGV[3])
while redis.call('LLEN', p .. 'ids') > size do
  local old = redis.call('LPOP', p .. 'ids')
  redis.call('DEL', p .. 'e:' .. old, p .. 'rq:' .. old, p .. 'rs:' .. old, p .. 'tr:' .. old)
end
return id
"""

# Part of a response body, while its entry is still in the journal and under BODY_LIMIT.
JOURNAL_BODY = """
local p = ARGV[1]
if redis.call('EXISTS', p .. 'e:' .. ARGV[2]) == 0 then return 0 end
local room = tonumber(ARGV[4]) - redis.call('STRLEN', p .. 'rs:' .. ARGV[2])
if room <= 0 then redis.call('SET', p .. 'tr:' .. ARGV[2], 1) return 0 end
if string.len(ARGV[3]) > room then
  redis.call('SET', p .. 'tr:' .. ARGV[2], 1)
  redis.call('APPEND', p .. 'rs:' .. ARGV[2], string.sub(ARGV[3], 1, room))
else
  redis.call('APPEND', p .. 'rs:' .. ARGV[2], ARGV[3])
end
return 1
"""


class RedisJournal:
    """The request journal of every worker and replica, in Redis under `P:j:`. Bodies are held
    up to BODY_LIMIT each (the in-process journal also keeps a total budget; here the bound is
    `size` entries of at most two such bodies). A journal write that Redis cannot take is logged
    and dropped: the request it describes was answered already."""

    def __init__(self, size: int, client: redis.Redis, prefix: str) -> None:
        self.size = size
        self.client = client
        self.p = f"{prefix}:j:"
        self._add = client.register_script(JOURNAL_ADD)
        self._body = client.register_script(JOURNAL_BODY)

    def record(self, entry: dict, request_body: bytes | None = None, deferred: bool = False) -> None:
        """Keep an entry; `deferred`: with the first part of its response body (`add_body`), in
        one round trip, which still comes before any byte of that body leaves."""
        if self.size == 0:
            return
        entry["at"] = format_timestamp(datetime.now(UTC))
        if deferred:
            entry["_pending"] = request_body or b""
        else:
            self._write(entry, request_body or b"", b"")

    def _write(self, entry: dict, request_body: bytes, response_body: bytes) -> None:
        try:
            fields = orjson.dumps({k: v for k, v in entry.items() if k not in ("id", "_pending")})
            truncated = len(request_body) > BODY_LIMIT or len(response_body) > BODY_LIMIT
            entry["id"] = int(self._add(args=[fields[1:], request_body[:BODY_LIMIT], self.size, self.p,
                                              response_body[:BODY_LIMIT], int(truncated)]))
        except redis.RedisError as exc:
            self._dropped(exc)

    def add_body(self, entry: dict, chunk: bytes, final: bool = True) -> None:
        if self.size == 0:
            return
        if "_pending" in entry:
            self._write(entry, entry.pop("_pending"), chunk)
            return
        if not chunk or "id" not in entry:
            return
        try:
            self._body(args=[self.p, entry["id"], chunk, BODY_LIMIT])
        except redis.RedisError as exc:
            self._dropped(exc)

    @staticmethod
    def _dropped(exc: redis.RedisError) -> None:
        if unavailable_reason(exc) is None:
            raise exc
        log.warning("journal: an entry was not kept, Redis cannot be reached (%s)", unavailable_reason(exc))

    def _entries(self) -> list[dict]:
        ids = self.client.lrange(f"{self.p}ids", 0, -1)
        entries = []
        for start in range(0, len(ids), 1000):
            chunk = ids[start:start + 1000]
            for raw in self.client.mget([f"{self.p}e:{i.decode()}" for i in chunk]):
                if raw is not None:
                    entries.append(orjson.loads(raw))
        return entries

    @mapped
    def query(self, namespace: str | None = None, method: str | None = None, path: str | None = None,
              status: int | None = None, operation_id: str | None = None, contract: str | None = None,
              after: int | None = None, limit: int | None = None) -> list[dict]:
        selected = select(self._entries(), namespace, method, path, status, operation_id, contract, after, limit)
        if not selected:
            return []
        pipe = self.client.pipeline(transaction=False)
        for entry in selected:
            pipe.get(f"{self.p}rq:{entry['id']}")
            pipe.get(f"{self.p}rs:{entry['id']}")
            pipe.exists(f"{self.p}tr:{entry['id']}")
        found = pipe.execute()
        readable = []
        for position, entry in enumerate(selected):
            request_body, response_body, truncated = found[3 * position:3 * position + 3]
            shown = {k: v for k, v in entry.items() if k not in ("id", "at", "bodies_withheld")}
            shown.update(id=entry["id"], at=entry["at"], request_body=_decode(request_body),
                         response_body=_decode(response_body))
            if truncated:
                shown["bodies_truncated"] = True
            if "bodies_withheld" in entry:
                shown["bodies_withheld"] = entry["bodies_withheld"]
            readable.append(shown)
        return readable

    @mapped
    def clear(self, namespace: str | None = None) -> int:
        entries = self._entries()
        gone = [e["id"] for e in entries if namespace is None or e["namespace"] == namespace]
        pipe = self.client.pipeline(transaction=False)
        for entry_id in gone:
            pipe.lrem(f"{self.p}ids", 1, entry_id)
            pipe.delete(f"{self.p}e:{entry_id}", f"{self.p}rq:{entry_id}", f"{self.p}rs:{entry_id}",
                        f"{self.p}tr:{entry_id}")
        pipe.execute()
        return len(gone)
