"""Namespaces on Redis: what `sandbox.runtime.Sandbox` and `Namespace` do in memory, for any
number of sandbox processes sharing one Redis (`--store redis://...`).

A namespace is one hash, `P:ns:{name}`: the generation of data it points at (`uid`, see
`sandbox.stores.redis_store`), its identity (`nsid`, new each time the name is made), scenario,
seed and clock. Every request reads it once, so a reset, a clock change or a deletion made through
one process is what the next request to any process sees. Replacing a namespace's data (reset,
scenario, fixtures, import) writes a new generation first and then repoints the namespace and
unlinks the old generation in one transaction, WATCHing the namespace so that two replacements
racing leave exactly one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from pathlib import Path

import redis
from redis.exceptions import ResponseError, WatchError

from .. import fixtures
from ..clock import Clock, ClockError
from ..config import Config
from ..runtime import REQUEST_NAMESPACES, scenario_of
from ..naming import (
    DEFAULT_NAMESPACE,
    DefaultNamespace,
    NamespaceLimit,
    check_namespace_name,
)
from ..seed import Scenario, ScenarioError, Templates
from ..snapshot import StateError, export_store, import_store
from ..timestamps import format_timestamp
from .protocol import StoreStartError, StoreUnavailable
from .redis_books import TAKE_RULE, RedisJournal, RedisRateLimiter, RedisRuleBook, RedisTokenBook, rule_keys
from .redis_store import (
    COPY_SCRIPT,
    LAYOUT,
    PAGE_SCRIPT,
    Keys,
    RedisStore,
    Stale,
    business_ids,
    connect,
    mapped,
    new_uid,
    read_generation,
    unavailable_reason,
    write_generation,
)

log = logging.getLogger("layer_sandbox")

# A field of a hash set only while the hash exists.
SET_IF_THERE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"""
# A name whose namespace expired forgotten, unless it was made again meanwhile.
FORGET_IF_GONE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
return 1
"""


class RedisStartError(StoreStartError):
    """Redis cannot be used at start (unreachable, too old, another layout): one line, exit 1."""


def masked(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parsed = redis.connection.urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


class RedisNamespace:
    """One namespace as this request sees it (rebuilt from `P:ns:{name}` per request)."""

    def __init__(self, backend: RedisSandbox, name: str, fields: dict[bytes, bytes], rules: RedisRuleBook) -> None:
        self.backend = backend
        self.name = name
        self.key = backend.namespace_key(name)
        self.nsid = fields[b"nsid"].decode()
        self.uid = fields[b"uid"].decode()
        self.seed = int(fields[b"seed"])
        self.scenario = backend.scenario_at(fields[b"scenario"].decode())
        self.clock = Clock()
        self.clock.restore(json.loads(fields[b"clock"]))
        self.rules = rules
        self.store = RedisStore(backend.client, backend.prefix, name, self.uid, self.clock, backend.scripts)

    def describe(self) -> dict:
        return {"namespace": self.name, "scenario": self.scenario.name, "seed": self.seed}

    @mapped
    def save_clock(self) -> None:
        """The clock as the control route left it, for every process's next request (unless the
        namespace was deleted meanwhile: a clock alone would be half a namespace)."""
        self.backend.scripts["set_if_there"](keys=[self.key], args=["clock", json.dumps(self.clock.state())])

    @mapped
    def reset(self, seed: int | None = None, scenario: Scenario | None = None) -> None:
        scenario = scenario or self.scenario
        seed = self.seed if seed is None else seed
        uid = self.backend.write_template(scenario, seed, self.clock)
        self.backend.repoint(self.name, uid, {"seed": seed, "scenario": str(scenario.path)})
        self.scenario, self.seed, self.uid = scenario, seed, uid
        self.rules.clear()

    @mapped
    def add_fixtures(self, body: dict) -> dict:
        """sandbox.fixtures on the whole namespace read at one version; the new generation replaces
        it only if no write landed meanwhile (else it is done again on the newer state)."""
        client = self.backend.client
        for _ in range(20):
            with client.pipeline(transaction=True) as pipe:
                keys = Keys(self.backend.prefix, self.uid)
                try:
                    pipe.watch(self.key, keys.version)
                    store = read_generation(pipe, keys, self.clock)
                    if store is None:
                        raise Stale
                    new_store, added = fixtures.apply(store, body, lambda: format_timestamp(self.clock()))
                    uid = self.backend.new_generation(new_store)
                    try:
                        pipe.multi()
                        pipe.hset(self.key, "uid", uid)
                        pipe.unlink(*keys.all(business_ids(client, keys)))
                        pipe.hdel(self.backend.uids_key, keys.uid)
                        pipe.execute()
                    except WatchError:
                        self.backend.unlink_generation(uid)
                        raise
                    self.uid = uid
                    return added
                except (WatchError, Stale):
                    self.uid = self.backend.current_uid(self.name)
        raise StoreUnavailable("the namespace kept changing while fixtures were added")

    @mapped
    def export(self) -> dict:
        client = self.backend.client
        for _ in range(20):
            keys = Keys(self.backend.prefix, self.uid)
            with client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(keys.version)
                    store = read_generation(pipe, keys, self.clock)
                    if store is None:
                        raise Stale
                    pipe.multi()
                    pipe.get(keys.version)
                    pipe.execute()
                except (WatchError, Stale):
                    self.uid = self.backend.current_uid(self.name)
                    continue
            return {**export_store(store), "namespace": self.name, "scenario": self.scenario.name,
                    "seed": self.seed, "clock": self.clock.state()}
        raise StoreUnavailable("the namespace kept changing while it was exported")

    @mapped
    def load(self, document: dict) -> None:
        store = import_store(document, clock=self.clock)
        scenario = scenario_of(document, self.scenario)
        clock = Clock()
        clock.restore(self.clock.state())
        if "clock" in document:
            try:
                clock.restore(document["clock"])
            except ClockError as exc:
                raise StateError([f"clock: {exc}"]) from None
        uid = self.backend.new_generation(store)
        seed = document.get("seed", self.seed)
        self.backend.repoint(self.name, uid, {"seed": seed, "scenario": str(scenario.path),
                                              "clock": json.dumps(clock.state())})
        self.clock.restore(clock.state())
        self.uid, self.scenario, self.seed = uid, scenario, seed


class RedisSandbox:
    """All namespaces of a sandbox whose data is in Redis; the same face as `runtime.Sandbox`."""

    state_file = None  # Redis persists itself (AOF); --state-file is refused with --store redis

    def __init__(self, config: Config, client: redis.Redis | None = None) -> None:
        self.config = config
        self.url = config.store
        self.prefix = config.store_prefix
        self.client = client or connect(self.url)
        self.check()
        self.scenario = Scenario.load(config.scenario)
        self.templates = Templates()
        self.scripts = {"page": self.client.register_script(PAGE_SCRIPT),
                        "take_rule": self.client.register_script(TAKE_RULE),
                        "copy": self.client.register_script(COPY_SCRIPT),
                        "set_if_there": self.client.register_script(SET_IF_THERE),
                        "forget_if_gone": self.client.register_script(FORGET_IF_GONE)}
        self._template_keys: dict[str, list[str]] = {}
        self.sweep_seconds = min(60.0, float(config.namespace_ttl or 60))
        self._scenarios: dict[str, Scenario] = {str(self.scenario.path): self.scenario}
        self.namespace(DEFAULT_NAMESPACE)
        if config.load_state is not None and self._made_default:
            self._load_export(config.load_state)

    # ------------------------------------------------------------------ start-up

    def check(self) -> None:
        """Redis is there, new enough, and holds our layout (or nothing yet) under the prefix."""
        try:
            self.client.ping()
            version = self.client.info("server").get("redis_version", "0")
            if tuple(int(part) for part in version.split(".")[:2]) < (6, 2):
                raise RedisStartError(f"Redis at {masked(self.url)} is version {version}; the sandbox needs 6.2 or later")
            layout_key = f"{self.prefix}:layout"
            self.client.set(layout_key, LAYOUT, nx=True)
            found = self.client.get(layout_key)
            if found is not None and found.decode() != LAYOUT:
                raise RedisStartError(f"Redis at {masked(self.url)} holds another layout under prefix "
                                      f"{self.prefix!r} ({found.decode()}); use another --store-prefix")
            persistence = self.client.config_get("append*")
        except (redis.RedisError, OSError) as exc:
            if isinstance(exc, ResponseError) and "CONFIG" in str(exc).upper():
                persistence = {}
            else:
                raise RedisStartError(f"cannot reach Redis at {masked(self.url)}: {exc}") from None
        if persistence and (persistence.get("appendonly") != "yes" or persistence.get("appendfsync") != "always"):
            log.warning("Redis at %s runs with appendonly=%s appendfsync=%s: an acknowledged write survives a "
                        "Redis crash only with appendonly yes and appendfsync always (see the README)",
                        masked(self.url), persistence.get("appendonly"), persistence.get("appendfsync"))

    def _load_export(self, path) -> None:
        from ..persistence import StateFileError

        try:
            document = json.loads(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise StateFileError(f"--load-state {path}: not a readable JSON file ({exc})") from None
        if isinstance(document, dict) and set(document) == {"data"}:
            document = document["data"]
        try:
            self.namespace(DEFAULT_NAMESPACE).load(document)
        except StateError as exc:
            raise StateFileError(f"--load-state {path}: not a state the sandbox can load: {exc}") from None

    # ------------------------------------------------------------------ generations

    def namespace_key(self, name: str) -> str:
        return f"{self.prefix}:ns:{name}"

    def current_uid(self, name: str) -> str:
        """The generation the namespace points at now; StoreUnavailable if it was deleted."""
        uid = self.client.hget(self.namespace_key(name), "uid")
        if uid is None:
            raise StoreUnavailable(f"namespace {name!r} was deleted while the request ran")
        return uid.decode()

    def scenario_at(self, path: str) -> Scenario:
        found = self._scenarios.get(path)
        if found is None:
            try:
                found = Scenario.load(path)
            except ScenarioError:  # another host's path: the same scenario by name
                found = Scenario.load(Path(path).stem)
            self._scenarios[path] = found
        return found

    @property
    def uids_key(self) -> str:
        """Every namespace generation (uid -> when it was made), for the sweeper; templates aside."""
        return f"{self.prefix}:uids"

    def new_generation(self, store, template: bool = False) -> str:
        uid = new_uid()
        if not template:  # registered first (as being written): a process that dies meanwhile leaves nothing unswept
            self.client.hset(self.uids_key, uid, f"w{int(time.time())}")
        write_generation(self.client, Keys(self.prefix, uid), store)
        if not template:
            self.client.hset(self.uids_key, uid, int(time.time()))
        return uid

    def write_template(self, scenario: Scenario, seed: int, clock: Clock) -> str:
        """A new generation holding the scenario's seeded data: a server-side copy of the template
        generation `P:tpl:{hash of seed and scenario}` names, written once by the first process
        that needs it (seeding is deterministic, so any process writes the same)."""
        pointer = f"{self.prefix}:tpl:{hashlib.sha1(f'{seed}:{scenario.content}'.encode()).hexdigest()}"
        uid = new_uid()
        for _ in range(3):
            template = self.client.get(pointer)
            if template is None:
                made = self.new_generation(self.templates.store(scenario, seed, clock=clock), template=True)
                if self.client.set(pointer, made, nx=True):
                    template = made.encode()
                else:  # another process published one first
                    self.unlink_generation(made)
                    continue
            template = template.decode()
            suffixes = self._template_keys.get(template)
            if suffixes is None:
                keys = Keys(self.prefix, template)
                suffixes = [key[len(keys.base):] for key in keys.all(business_ids(self.client, keys))]
                suffixes.remove(":ids")
                suffixes.insert(0, ":ids")  # the script checks the template is whole by its first key
                self._template_keys[template] = suffixes
            self.client.hset(self.uids_key, uid, int(time.time()))
            if self.scripts["copy"](args=[Keys(self.prefix, template).base, Keys(self.prefix, uid).base, *suffixes]):
                return uid
            self.client.delete(pointer)  # the template's data is gone (flushed, evicted): write it again
            self._template_keys.pop(template, None)
        raise StoreUnavailable("the seeded template kept disappearing from Redis")

    def unlink_generation(self, uid: str) -> None:
        keys = Keys(self.prefix, uid)
        self.client.unlink(*keys.all(business_ids(self.client, keys)))
        self.client.hdel(self.uids_key, uid)

    def _leave_generation(self, name: str, change) -> bool:
        """In one transaction, WATCHing the namespace: `change(pipe)` (queued after MULTI) and the
        generation the namespace pointed at unlinked. False when there is no such namespace."""
        key = self.namespace_key(name)
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    old = pipe.hget(key, "uid")
                    if old is None:
                        return False
                    old_keys = Keys(self.prefix, old.decode())
                    stale = old_keys.all(business_ids(pipe, old_keys))
                    pipe.multi()
                    change(pipe)
                    pipe.unlink(*stale)
                    pipe.hdel(self.uids_key, old_keys.uid)
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def repoint(self, name: str, uid: str, fields: dict) -> None:
        """Point the namespace at generation `uid` (with `fields`), unlinking the one it left."""
        mapping = {"uid": uid, **{k: str(v) for k, v in fields.items()}}
        if not self._leave_generation(name, lambda pipe: pipe.hset(self.namespace_key(name), mapping=mapping)):
            self.unlink_generation(uid)  # dropped meanwhile: the new data has no namespace to go to
            raise StoreUnavailable(f"namespace {name!r} was deleted while its data was replaced")

    # ------------------------------------------------------------------ namespaces

    @mapped
    def namespace(self, name: str | None) -> RedisNamespace:
        """The namespace as it is now, and its rules, in one round trip (made on first use)."""
        name = DEFAULT_NAMESPACE if name is None else name
        seen = REQUEST_NAMESPACES.get()
        if seen is not None and name in seen:
            return seen[name]
        found = self._resolve(name)
        if seen is not None:
            seen[name] = found
        return found

    def _resolve(self, name: str) -> RedisNamespace:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.namespace_key(name))
        pipe.hgetall(rule_keys(self.prefix, name)[0])
        if self.config.namespace_ttl and name != DEFAULT_NAMESPACE:
            pipe.expire(self.namespace_key(name), self.config.namespace_ttl)  # idle for the TTL: gone
        fields, rules, *_ = pipe.execute()
        if not fields:
            return self.create(name)[0]
        return self._view(name, fields, rules)

    def _view(self, name: str, fields: dict, rules: dict | None = None) -> RedisNamespace:
        book = RedisRuleBook(self.client, self.prefix, name, rules, self.scripts["take_rule"])
        return RedisNamespace(self, name, fields, book)

    @mapped
    def create(self, name: str, seed: int | None = None, scenario: Scenario | None = None,
               replace: bool = False) -> tuple[RedisNamespace, bool]:
        check_namespace_name(name)
        key = self.namespace_key(name)
        names = f"{self.prefix}:names"
        fields = self.client.hgetall(key)
        if fields:
            found = self._view(name, fields)
            if replace:
                found.reset(self.config.seed if seed is None else seed, scenario or self.scenario)
            return found, False
        if self.client.scard(names) >= self.config.max_namespaces and not self.client.sismember(names, name):
            raise NamespaceLimit(
                f"this sandbox already holds {self.client.scard(names)} namespaces, its limit "
                "(--max-namespaces); delete one with DELETE /__sandbox/namespaces/NAME")
        clock = Clock()
        if self.config.clock:
            clock.configure(self.config.clock)
        scenario = scenario or self.scenario
        seed = self.config.seed if seed is None else seed
        uid = self.write_template(scenario, seed, clock)
        made = {"nsid": new_uid(), "uid": uid, "seed": str(seed), "scenario": str(scenario.path),
                "clock": json.dumps(clock.state())}
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                if pipe.exists(key):
                    raise WatchError
                pipe.multi()
                pipe.hset(key, mapping=made)
                if self.config.namespace_ttl and name != DEFAULT_NAMESPACE:
                    pipe.expire(key, self.config.namespace_ttl)
                pipe.sadd(names, name)
                pipe.delete(*rule_keys(self.prefix, name))  # a new namespace's rules count from 1
                pipe.execute()
            except WatchError:  # another process made it first: theirs is the namespace
                self.unlink_generation(uid)
                if name == DEFAULT_NAMESPACE:
                    self._made_default = False
                return self._view(name, self.client.hgetall(key)), False
        if name == DEFAULT_NAMESPACE:
            self._made_default = True
        return self._view(name, {k.encode(): v.encode() for k, v in made.items()}), True

    _made_default = False

    @mapped
    def drop(self, name: str) -> bool:
        if name == DEFAULT_NAMESPACE:
            raise DefaultNamespace("the default namespace cannot be deleted (requests without a namespace "
                                   "use it); reset it with POST /__sandbox/reset")

        def forget(pipe) -> None:
            pipe.delete(self.namespace_key(name), *rule_keys(self.prefix, name))
            pipe.srem(f"{self.prefix}:names", name)
        return self._leave_generation(name, forget)

    @mapped
    def describe(self, name: str) -> dict:
        fields = self.client.hgetall(self.namespace_key(name))
        if not fields:
            return {"namespace": name, "exists": False, "scenario": self.scenario.name, "seed": self.config.seed}
        return {"namespace": name, "scenario": self.scenario_at(fields[b"scenario"].decode()).name,
                "seed": int(fields[b"seed"]), "exists": True}

    @mapped
    def list_namespaces(self) -> list[dict]:
        described = [self.describe(raw.decode()) for raw in sorted(self.client.smembers(f"{self.prefix}:names"))]
        return [{k: v for k, v in found.items() if k != "exists"} for found in described if found["exists"]]

    @mapped
    def clock_of(self, name: str):
        """The namespace's clock, read now (None if there is no such namespace)."""
        fields = self.client.hgetall(self.namespace_key(name))
        if not fields:
            return None
        clock = Clock()
        clock.restore(json.loads(fields[b"clock"]))
        clock.nsid = fields[b"nsid"].decode()
        return clock

    def token_book(self) -> RedisTokenBook:
        return RedisTokenBook(self.client, self.prefix)

    @mapped
    def whoami_key(self) -> bytes:
        """One key for every worker and replica, so that /whoami names a token's client alike."""
        key = f"{self.prefix}:whoami-key"
        self.client.set(key, secrets.token_bytes(32), nx=True)
        return self.client.get(key)

    def rate_limiter(self, per_second: int) -> RedisRateLimiter:
        return RedisRateLimiter(per_second, self.client, self.prefix)

    def journal(self, size: int) -> RedisJournal:
        return RedisJournal(size, self.client, self.prefix)

    def checkpoint(self) -> int:
        raise AssertionError("a Redis store has no state file")

    def compact_if_due(self) -> None:
        """Between requests: sweep, at most once a SWEEP_SECONDS across all processes."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_seconds
        try:
            if self.client.set(f"{self.prefix}:sweep", os.getpid(), nx=True, ex=max(1, int(self.sweep_seconds))):
                swept = self.sweep()
                if any(swept):
                    log.info("swept %d expired namespaces and %d unused generations of data", *swept)
        except redis.RedisError as exc:
            if unavailable_reason(exc) is None:
                raise
            log.warning("sweep skipped: %s", unavailable_reason(exc))

    _next_sweep = 0.0

    def sweep(self) -> tuple[int, int]:
        """Forget namespaces whose hash expired (--namespace-ttl) and unlink every generation of
        data no namespace points at any more, made more than a grace ago (twice the sweep's
        period, 5 to 120 s: one that a reset or fixtures is still writing is younger). Returns
        (namespaces, generations)."""
        grace = min(120.0, max(5.0, 2 * self.sweep_seconds))
        names = [raw.decode() for raw in self.client.smembers(f"{self.prefix}:names")]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.namespace_key(name), "uid")
        pointed = dict(zip(names, pipe.execute()))
        gone = [name for name, uid in pointed.items() if uid is None
                and self.scripts["forget_if_gone"](keys=[self.namespace_key(name), f"{self.prefix}:names",
                                                         *rule_keys(self.prefix, name)], args=[name])]
        live = {uid.decode() for uid in pointed.values() if uid is not None}
        now = time.time()

        def abandoned(made: bytes) -> bool:  # one still being written gets an hour (a large scenario)
            text = made.decode()
            return int(text[1:]) < now - 3600 if text.startswith("w") else int(text) < now - grace
        stale = [uid.decode() for uid, made in self.client.hgetall(self.uids_key).items()
                 if uid.decode() not in live and abandoned(made)]
        for uid in stale:
            if self.client.hget(self.namespace_key(DEFAULT_NAMESPACE), "uid") == uid.encode():
                continue
            self.unlink_generation(uid)
        return len(gone), len(stale)

    @property
    def store(self) -> RedisStore:
        return self.namespace(DEFAULT_NAMESPACE).store

    def close(self) -> None:
        self.client.close()
