"""The Redis store: a namespace's data in Redis hashes and sorted sets, so that any number of
sandbox processes, on one host or many, serve one sandbox (docs/design/redis-store.md).

Layout. Every key starts with the sandbox's prefix `P` (`--store-prefix`). A namespace's data
lives under `P:d:{uid}`, one random uid per generation of data: a reset, a scenario load, an
import or fixtures write a whole new generation and repoint the namespace (`P:ns:{name}`) to it in
one transaction that also unlinks the old one. Per business (`B` = `P:d:{uid}:b:{id}`): records
by id in hashes (pickled model objects: only sandbox processes read them), the orders an export
keeps in lists, and one sorted set per list order whose members are the sort keys as bytes
(`sandbox.stores.lexkey`), so a page is a `ZRANGE ... BYLEX LIMIT` at any size.

Writes. The business rules are the memory store's own code (`MemoryStore`), run on a `_Unit`: a
store of one business whose maps read the records they are asked for from Redis while the
generation's version key is WATCHed, and remember what the rules wrote. The unit's changes are
then applied in one MULTI/EXEC that also bumps the version; if any other write committed in the
meantime, EXEC fails and the write reruns on the new state. Every decision is thus made on the
state it is applied to: no read-then-write race, across any number of processes.
"""

from __future__ import annotations

import functools
import pickle
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError as RedisConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TimeoutError as RedisTimeoutError,
    WatchError,
)
from redis.retry import Retry

from ..models import Business, Customer, CustomerCredit, Invoice
from ..pagination import SORT_FIELDS, Cursor, InvalidCursor, Key, Page, sort_key, take_page
from . import lexkey
from .memory import CreditFilters, IdSource, InvoiceFilters, MemoryStore, customer_listed, invoice_key
from .protocol import InvalidInput, NotFound, StoreBusy, StoreError, StoreUnavailable

PICKLE_PROTOCOL = 5
# What this code writes; a prefix holding another layout is refused at start.
LAYOUT = "layer-sandbox/redis-v1"
# A write that keeps losing its namespace's race gives up after this long (a 503).
WRITE_TIMEOUT_SECONDS = 5.0
ID_LENGTH = 36  # every record id is a lower-case UUID


def connect(url: str) -> redis.Redis:
    """A client that never retries by itself: redis-py 8 retries a failed command up to 10 times,
    and a retried INCR or EXEC could apply twice. The sandbox decides what is safe to resend."""
    return redis.Redis.from_url(url, protocol=2, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1,
                                socket_timeout=2, health_check_interval=0)


UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, OutOfMemoryError)


def unavailable_reason(exc: BaseException) -> str | None:
    """Why Redis cannot serve now, for the errors that mean so; None for any other error."""
    if isinstance(exc, UNAVAILABLE):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ResponseError) and str(exc).startswith(("MISCONF", "LOADING", "READONLY", "OOM")):
        return str(exc)
    return None


def mapped(method):
    """Redis's "cannot serve now" errors as the store's StoreUnavailable (a 503 upstairs)."""
    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, ResponseError) as exc:
            reason = unavailable_reason(exc)
            if reason is None:
                raise
            raise StoreUnavailable(f"the Redis store cannot be reached: {reason}") from None
    return call


def dumps(record) -> bytes:
    return pickle.dumps(record, PICKLE_PROTOCOL)


def loads(raw: bytes | None):
    return None if raw is None else pickle.loads(raw)


class _Decoded:
    """Records read for an answer, by their stored bytes: unpickling a credit (its customer, lines,
    accounts and tags are slotted dataclasses, each restored by a Python call) costs ~30 us, a
    lookup by its bytes ~1 us, and a page reads the same records again and again. Only reads use
    it, and they never change what they get (a write's unit of work reads records of its own,
    `_Records`, since the rules change them in place); a record changed in Redis has other bytes."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._records: dict[bytes, object] = {}

    def __call__(self, raw: bytes | None):
        if raw is None:
            return None
        found = self._records.get(raw)
        if found is None:
            if len(self._records) >= self.size:
                self._records.clear()
            found = self._records[raw] = pickle.loads(raw)
        return found


read_record = _Decoded()


class BusinessKeys:
    """The key names of one business of one data generation."""

    def __init__(self, base: str) -> None:
        self.acct, self.acct_order, self.acct_sn = f"{base}:acct", f"{base}:acct:order", f"{base}:acct:sn"
        self.cu, self.cu_order, self.cu_ext = f"{base}:cu", f"{base}:cu:order", f"{base}:cu:ext"
        self.inv, self.inv_order, self.inv_ix = f"{base}:inv", f"{base}:inv:order", f"{base}:inv:ix"
        self.cr, self.cr_order, self.cr_ext = f"{base}:cr", f"{base}:cr:order", f"{base}:cr:ext"
        self.cr_bycu = f"{base}:cr:bycu"  # customer id:credit id, every credit, deleted ones too
        self.tags = f"{base}:tags"
        self.ix = {name: f"{base}:cr:ix:{name}" for name in SORT_FIELDS}  # all live credits
        self.cix = {name: f"{base}:cr:cix:{name}" for name in SORT_FIELDS}  # customer id + sort key

    def all(self) -> list[str]:
        return [self.acct, self.acct_order, self.acct_sn, self.cu, self.cu_order, self.cu_ext, self.inv,
                self.inv_order, self.inv_ix, self.cr, self.cr_order, self.cr_ext, self.cr_bycu, self.tags,
                *self.ix.values(), *self.cix.values()]


class Keys:
    """The key names of one data generation (`uid`) under the sandbox's prefix."""

    def __init__(self, prefix: str, uid: str) -> None:
        self.uid = uid
        base = f"{prefix}:d:{uid}"
        self.base = base
        self.version = f"{base}:v"
        self.ids = f"{base}:ids"
        self.businesses = f"{base}:businesses"
        self.names = f"{base}:bn"

    def business(self, business_id: str) -> BusinessKeys:
        return BusinessKeys(f"{self.base}:b:{business_id}")

    def all(self, business_ids: Iterable[str]) -> list[str]:
        keys = [self.version, self.ids, self.businesses, self.names]
        for business_id in business_ids:
            keys.extend(self.business(business_id).all())
        return keys


def new_uid() -> str:
    return secrets.token_hex(8)


def credit_member(credit: CustomerCredit, field: str, customer_prefix: bool = False) -> bytes:
    return lexkey.encode(sort_key(credit, field), credit.customer.id if customer_prefix else "")


def bycu_member(credit: CustomerCredit) -> str:
    return f"{credit.customer.id}:{credit.id}"


# ------------------------------------------------------------------------------ whole generations

def write_generation(client: redis.Redis, keys: Keys, store: MemoryStore, batch: int = 2000) -> None:
    """Write a memory store's whole state as the generation `keys` (not yet pointed at)."""
    pipe = client.pipeline(transaction=False)
    queued = 0

    def flush(force: bool = False) -> None:
        nonlocal queued
        if queued >= batch or (force and queued):
            pipe.execute()
            queued = 0

    with store.lock:
        for business in store.businesses.values():
            bk = keys.business(business.id)
            pipe.rpush(keys.businesses, business.id)
            pipe.hset(keys.names, business.id, business.name)
            pipe.set(bk.tags, dumps((business.tag_dimensions, business.tag_definitions)))
            queued += 3
            for account in business.ledger_accounts.values():
                pipe.hset(bk.acct, account.id, dumps(account))
                pipe.rpush(bk.acct_order, account.id)
                pipe.hsetnx(bk.acct_sn, account.stable_name, account.id)
                queued += 3
                flush()
            for position, customer_id in enumerate(store._customer_order[business.id]):
                customer = business.customers[customer_id]
                pipe.hset(bk.cu, customer.id, dumps(customer))
                pipe.zadd(bk.cu_order, {customer.id: position})
                if customer.external_id is not None:
                    pipe.hsetnx(bk.cu_ext, customer.external_id, customer.id)
                queued += 3
                flush()
            for invoice in business.invoices.values():
                pipe.hset(bk.inv, invoice.id, dumps(invoice))
                pipe.rpush(bk.inv_order, invoice.id)
                pipe.zadd(bk.inv_ix, {lexkey.encode(invoice_key(invoice)): 0})
                queued += 3
                flush()
            for credit in business.credits.values():
                pipe.hset(bk.cr, credit.id, dumps(credit))
                pipe.rpush(bk.cr_order, credit.id)
                pipe.zadd(bk.cr_bycu, {bycu_member(credit): 0})
                queued += 3
                if not credit.is_deleted:
                    for name in SORT_FIELDS:
                        pipe.zadd(bk.ix[name], {credit_member(credit, name): 0})
                        pipe.zadd(bk.cix[name], {credit_member(credit, name, True): 0})
                    queued += 8
                    if credit.external_id is not None:
                        pipe.hset(bk.cr_ext, credit.external_id, credit.id)
                        queued += 1
                flush()
        pipe.set(keys.ids, dumps((store.ids.state(), store.ids.drawn)))
        pipe.set(keys.version, 0)
    queued += 2
    flush(force=True)


def restored_ids(raw: bytes) -> IdSource:
    """The id generator as a generation's `ids` key keeps it (its state and how many it drew)."""
    state, drawn = loads(raw)
    ids = IdSource(0)
    ids.set_state(state)
    ids.drawn = drawn
    return ids


def read_generation(conn, keys: Keys, clock: Callable[[], datetime]) -> MemoryStore | None:
    """The generation `keys` as a memory store (for exports and fixtures); None if it is gone.
    `conn` may be a pipeline in immediate (WATCHing) mode, so that the caller can check that no
    write landed while it read."""
    raw_ids = conn.get(keys.ids)
    if raw_ids is None:
        return None
    ids = restored_ids(raw_ids)
    businesses = []
    for raw_id in conn.lrange(keys.businesses, 0, -1):
        business_id = raw_id.decode()
        bk = keys.business(business_id)
        business = Business(business_id, conn.hget(keys.names, business_id).decode())
        business.tag_dimensions, business.tag_definitions = loads(conn.get(bk.tags))
        business.ledger_accounts = _records(conn, bk.acct, conn.lrange(bk.acct_order, 0, -1))
        business.customers = _records(conn, bk.cu, conn.zrange(bk.cu_order, 0, -1))
        business.invoices = _records(conn, bk.inv, conn.lrange(bk.inv_order, 0, -1))
        business.credits = _records(conn, bk.cr, conn.lrange(bk.cr_order, 0, -1))
        businesses.append(business)
    return MemoryStore(businesses, ids, clock)


def _records(conn, key: str, order: list[bytes], batch: int = 1000) -> dict:
    found = {}
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        for raw_id, raw in zip(chunk, conn.hmget(key, chunk)):
            found[raw_id.decode()] = loads(raw)
    return found


def business_ids(conn, keys: Keys) -> list[str]:
    return [raw.decode() for raw in conn.lrange(keys.businesses, 0, -1)]


# ------------------------------------------------------------------------------ reads

# One page of a sorted set and the records its members name, atomically, and only while the
# namespace still points at the generation asked for (else nil: the caller re-resolves it); the
# business (ARGV[6]) and customer (ARGV[7]) the list is of, when given, checked in the same call.
PAGE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return false end
if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[4], ARGV[6]) == 0 then return {'missing', 'business'} end
if ARGV[7] ~= '' and redis.call('HEXISTS', KEYS[5], ARGV[7]) == 0 then return {'missing', 'customer'} end
local members
if ARGV[2] == 'LEX' then
  members = redis.call('ZRANGE', KEYS[2], ARGV[3], ARGV[4], 'BYLEX', 'LIMIT', 0, ARGV[5])
elseif ARGV[2] == 'LEXREV' then
  members = redis.call('ZRANGE', KEYS[2], ARGV[4], ARGV[3], 'BYLEX', 'REV', 'LIMIT', 0, ARGV[5])
else
  members = redis.call('ZRANGE', KEYS[2], ARGV[3], ARGV[4], 'BYSCORE', 'LIMIT', 0, ARGV[5], 'WITHSCORES')
end
if #members == 0 then return {members, {}} end
local ids = {}
if ARGV[2] == 'SCORE' then
  for i = 1, #members, 2 do ids[#ids + 1] = members[i] end
else
  for i = 1, #members do ids[i] = string.sub(members[i], -36) end
end
return {members, redis.call('HMGET', KEYS[3], unpack(ids))}
"""


# A template generation copied whole under a new uid (a namespace made or reset): every key on the
# server, in one step; 0 when the template's data is gone (the caller writes it again).
COPY_SCRIPT = """
if redis.call('EXISTS', ARGV[1] .. ARGV[3]) == 0 then return 0 end
for i = 3, #ARGV do redis.call('COPY', ARGV[1] .. ARGV[i], ARGV[2] .. ARGV[i]) end
return 1
"""


class _Missing(Exception):
    """The business or customer a list is of does not exist (`args[0]`: which)."""


class Stale(Exception):
    """The namespace was pointed at another generation (reset, import, fixtures) mid-call."""


# ------------------------------------------------------------------------------ the unit of work

class _Records:
    """A map of one Redis hash's records, read on first use (while the caller WATCHes), and
    the records the business rules wrote to it."""

    __slots__ = ("conn", "key", "loaded", "written")

    def __init__(self, conn, key: str) -> None:
        self.conn, self.key = conn, key
        self.loaded: dict[str, object] = {}
        self.written: dict[str, object] = {}

    def prefetch(self, ids: Iterable[str]) -> None:
        missing = [i for i in dict.fromkeys(ids) if i not in self.loaded and i not in self.written]
        if missing:
            for record_id, raw in zip(missing, self.conn.hmget(self.key, missing)):
                self.loaded[record_id] = loads(raw)

    def _find(self, record_id: str):
        if record_id in self.written:
            return self.written[record_id]
        if record_id not in self.loaded:
            self.loaded[record_id] = loads(self.conn.hget(self.key, record_id))
        return self.loaded[record_id]

    def get(self, record_id: str, default=None):
        found = self._find(record_id)
        return default if found is None else found

    def __getitem__(self, record_id: str):
        found = self._find(record_id)
        if found is None:
            raise KeyError(record_id)
        return found

    def __contains__(self, record_id: str) -> bool:
        return self._find(record_id) is not None

    def __setitem__(self, record_id: str, record) -> None:
        self.written[record_id] = record

    def values(self):
        raise AssertionError("a unit of work never walks a whole map; name the records it needs")


_GONE = object()


class _Texts:
    """A hash of text to id (external ids, stable names), read on first use; what was set or popped."""

    def __init__(self, conn, key: str) -> None:
        self.conn, self.key = conn, key
        self.written: dict[str, object] = {}

    def get(self, name: str | None, default=None):
        if name is None:  # a null external id names nothing (the memory store's dict.get(None))
            return default
        if name in self.written:
            value = self.written[name]
            return default if value is _GONE else value
        raw = self.conn.hget(self.key, name)
        return default if raw is None else raw.decode()

    def __setitem__(self, name: str, value: str) -> None:
        self.written[name] = value

    def pop(self, name: str, default=None):
        value = self.get(name, default)
        self.written[name] = _GONE
        return value


class _IndexLog:
    """Stands in for the memory store's CreditIndexes: the credits the rules discard from the
    indexes (as they were) and add back (as they are)."""

    def __init__(self) -> None:
        self.discarded: list[CustomerCredit] = []
        self.added: list[CustomerCredit] = []

    def discard(self, credit: CustomerCredit) -> None:
        self.discarded.append(credit)

    def add(self, credit: CustomerCredit) -> None:
        self.added.append(credit)


class _Business:
    """One business as the unit of work sees it: maps that read on demand."""

    def __init__(self, conn, bk: BusinessKeys, business_id: str, name: str) -> None:
        self.id, self.name, self._conn, self._bk = business_id, name, conn, bk
        self.customers = _Records(conn, bk.cu)
        self.invoices = _Records(conn, bk.inv)
        self.ledger_accounts = _Records(conn, bk.acct)
        self.credits = _Records(conn, bk.cr)
        self.customer_ext = _Texts(conn, bk.cu_ext)
        self._tags = None

    def _load_tags(self):
        if self._tags is None:
            dimensions, definitions = loads(self._conn.get(self._bk.tags))
            self._tags = (dimensions, definitions, dict(dimensions), dict(definitions))
        return self._tags

    @property
    def tag_dimensions(self) -> dict:
        return self._load_tags()[0]

    @property
    def tag_definitions(self) -> dict:
        return self._load_tags()[1]

    def tags_changed(self) -> bool:
        return self._tags is not None and (self._tags[0], self._tags[1]) != (self._tags[2], self._tags[3])

    def account_by_stable_name(self, stable_name: str):
        account_id = self._conn.hget(self._bk.acct_sn, stable_name)
        return None if account_id is None else self.ledger_accounts.get(account_id.decode())

    def customer_by_external_id(self, external_id: str):
        customer_id = self.customer_ext.get(external_id)
        return None if customer_id is None else self.customers.get(customer_id)


class _Unit(MemoryStore):
    """The memory store's rules, on one business read from Redis (see the module's docstring).
    Made per attempt of a write and thrown away after it."""

    def __init__(self, conn, keys: Keys, business_id: str, name: str, ids: IdSource,
                 clock: Callable[[], datetime]) -> None:
        self.lock = threading.RLock()
        self.ids = ids
        self.clock = clock
        self.on_write = self._noted
        self.keys = keys.business(business_id)
        self.conn = conn
        self.business_view = _Business(conn, self.keys, business_id, name)
        self.businesses = {business_id: self.business_view}
        self.index_log = _IndexLog()
        self._indexes = {business_id: self.index_log}
        self.credit_ext = _Texts(conn, self.keys.cr_ext)
        self._external_ids = {business_id: self.credit_ext}
        self.new_customers: list[str] = []
        self._customer_order = {business_id: self.new_customers}
        self._invoice_orders = {}
        self._touched = {}
        self.changed_invoices: list[Invoice] = []

    def _noted(self, business, *, credit=None, invoices=(), customer=None) -> None:
        self.changed_invoices.extend(invoices)

    def _credits_of_customer(self, business, customer_id: str) -> list[CustomerCredit]:
        members = self.conn.zrangebylex(self.keys.cr_bycu, f"[{customer_id}:", f"({customer_id};")
        ids = [member.decode()[-ID_LENGTH:] for member in members]
        business.credits.prefetch(ids)
        return [business.credits[credit_id] for credit_id in ids]

    def plan(self) -> list[tuple]:
        """Every change the rules made, as Redis commands `(name, *args)`: worked out (with the
        few reads that needs) before MULTI, queued after it."""
        bk, business = self.keys, self.business_view
        commands: list[tuple] = []
        credits = business.credits
        for credit_id, credit in credits.written.items():
            commands.append(("hset", bk.cr, credit_id, dumps(credit)))
            before = credits.loaded.get(credit_id)
            if before is None:
                commands.append(("rpush", bk.cr_order, credit_id))
                commands.append(("zadd", bk.cr_bycu, {bycu_member(credit): 0}))
            elif before.customer.id != credit.customer.id:
                commands.append(("zrem", bk.cr_bycu, bycu_member(before)))
                commands.append(("zadd", bk.cr_bycu, {bycu_member(credit): 0}))
        removed = {(name, member) for credit in self.index_log.discarded for name, member in _members(credit)}
        added = {(name, member) for credit in self.index_log.added for name, member in _members(credit)}
        for name, member in sorted(removed - added):
            commands.append(("zrem", name_of(bk, name), member))
        for name, member in sorted(added - removed):
            commands.append(("zadd", name_of(bk, name), {member: 0}))
        for name, value in self.credit_ext.written.items():
            commands.append(("hdel", bk.cr_ext, name) if value is _GONE else ("hset", bk.cr_ext, name, value))
        customers = business.customers
        for customer_id, customer in customers.written.items():
            commands.append(("hset", bk.cu, customer_id, dumps(customer)))
            before = customers.loaded.get(customer_id)
            old_external = before.external_id if before is not None else None
            if old_external != customer.external_id:
                if old_external is not None and business.customer_ext.get(old_external) == customer_id:
                    commands.append(("hdel", bk.cu_ext, old_external))
                if customer.external_id is not None:
                    commands.append(("hset", bk.cu_ext, customer.external_id, customer_id))
        if self.new_customers:
            position = self.conn.zcard(bk.cu_order)
            for offset, customer_id in enumerate(self.new_customers):
                commands.append(("zadd", bk.cu_order, {customer_id: position + offset}))
        for invoice in {invoice.id: invoice for invoice in self.changed_invoices}.values():
            commands.append(("hset", bk.inv, invoice.id, dumps(invoice)))
        if business.tags_changed():
            commands.append(("set", bk.tags, dumps((business.tag_dimensions, business.tag_definitions))))
        return commands


def _members(credit: CustomerCredit) -> Iterator[tuple[str, bytes]]:
    for name in SORT_FIELDS:
        yield f"ix:{name}", credit_member(credit, name)
        yield f"cix:{name}", credit_member(credit, name, True)


def name_of(bk: BusinessKeys, name: str) -> str:
    kind, field = name.split(":")
    return bk.ix[field] if kind == "ix" else bk.cix[field]


# ------------------------------------------------------------------------------ the store

class RedisStore:
    """One namespace's data in Redis: `sandbox.stores.protocol.CreditStore`.

    Bound to the namespace's name and the generation it pointed at when the request began; a
    call that finds the namespace repointed meanwhile follows it to the new generation."""

    def __init__(self, client: redis.Redis, prefix: str, namespace: str, uid: str,
                 clock: Callable[[], datetime], scripts: dict) -> None:
        self.client = client
        self.prefix = prefix
        self.namespace_key = f"{prefix}:ns:{namespace}"
        self.keys = Keys(prefix, uid)
        self.clock = clock
        self._page = scripts["page"]

    def _follow(self) -> None:
        uid = self.client.hget(self.namespace_key, "uid")
        if uid is None:
            raise StoreUnavailable("the namespace was deleted while the request ran")
        self.keys = Keys(self.prefix, uid.decode())

    def _read(self, *commands: Callable) -> list:
        """Run `commands` (each queues reads on a pipeline, given the keys) in one MULTI with a
        check that the namespace still points at this generation; follows it once if not."""
        for _ in range(3):
            pipe = self.client.pipeline(transaction=True)
            pipe.hget(self.namespace_key, "uid")
            for command in commands:
                command(pipe, self.keys)
            uid, *results = pipe.execute()
            if uid is not None and uid.decode() == self.keys.uid:
                return results
            self._follow()
        raise StoreBusy("the namespace kept being replaced while it was read")

    def _name(self, business_id: str) -> str:
        name, = self._read(lambda p, k: p.hget(k.names, business_id))
        if name is None:
            raise NotFound(f"Business {business_id} not found", field="businessId",
                           resource="business", id=business_id)
        return name.decode()

    def _record(self, business_id: str, kind: str, record_id: str):
        business_id, record_id = business_id.lower(), record_id.lower()
        name, raw = self._read(lambda p, k: p.hget(k.names, business_id),
                               lambda p, k: p.hget(getattr(k.business(business_id), kind), record_id))
        if name is None:
            raise NotFound(f"Business {business_id} not found", field="businessId",
                           resource="business", id=business_id)
        return read_record(raw)

    # ----------------------------------------------------------------------------- reads

    @mapped
    def business(self, business_id: str) -> Business:
        """The business's id and name (its records are read per operation, not held here)."""
        return Business(business_id.lower(), self._name(business_id.lower()))

    # The memory store's words for a record that is not there: (hash, label, path parameter, resource).
    _KINDS = {"credit": ("cr", "Customer credit", "customerCreditId", "customer_credit"),
              "customer": ("cu", "Customer", "customerId", "customer"),
              "invoice": ("inv", "Invoice", "invoiceId", "invoice")}

    def _found(self, kind: str, business_id: str, record_id: str):
        key, label, field, resource = self._KINDS[kind]
        record = self._record(business_id, key, record_id)
        if record is None or (kind == "credit" and record.is_deleted):
            raise NotFound(f"{label} {record_id} not found", field=field, resource=resource, id=record_id)
        return record

    @mapped
    def credit(self, business_id: str, credit_id: str) -> CustomerCredit:
        return self._found("credit", business_id, credit_id)

    @mapped
    def customer(self, business_id: str, customer_id: str) -> Customer:
        return self._found("customer", business_id, customer_id)

    @mapped
    def invoice(self, business_id: str, invoice_id: str) -> Invoice:
        return self._found("invoice", business_id, invoice_id)

    @mapped
    def customers_of(self, business_id: str, customer_ids: Iterable[str]) -> dict[str, Customer]:
        business_id, wanted = business_id.lower(), list(dict.fromkeys(customer_ids))
        if not wanted:
            return {}
        raw, = self._read(lambda p, k: p.hmget(k.business(business_id).cu, wanted))
        return {customer_id: read_record(found) for customer_id, found in zip(wanted, raw) if found is not None}

    @mapped
    def all_businesses(self) -> list[Business]:
        for _ in range(3):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(self.keys.version)
                    store = read_generation(pipe, self.keys, self.clock)
                    if store is None:
                        raise Stale
                    pipe.multi()
                    pipe.get(self.keys.version)
                    pipe.execute()
                    return list(store.businesses.values())
                except (WatchError, Stale):
                    self._follow()
        raise StoreBusy("the namespace kept changing while it was read whole")

    def _walk(self, zset: Callable[[Keys], str], records: Callable[[Keys], str], mode: str, low: bytes | str,
              high: bytes | str, batch: int, business_id: str = "",
              customer_id: str = "") -> Iterator[tuple[bytes, bytes, object]]:
        """Members of a sorted set from `low` (exclusive once walking), with their records, in
        batches of `batch` (one atomic script call each). The first call also checks that the
        business (and customer) exist: _Missing names the one that does not."""
        while True:
            for _ in range(3):
                found = self._page(keys=[self.namespace_key, zset(self.keys), records(self.keys), self.keys.names,
                                         self.keys.business(business_id or "-").cu],
                                   args=[self.keys.uid, mode, low, high, batch, business_id, customer_id])
                if found is not None and found[0] == b"missing":
                    raise _Missing(found[1].decode())
                business_id = customer_id = ""
                if found is not None:
                    break
                self._follow()
            else:
                raise StoreBusy("the namespace kept being replaced while it was listed")
            members, raws = found
            if mode == "SCORE":
                pairs = [(members[i], members[i + 1], raws[i // 2]) for i in range(0, len(members), 2)]
            else:
                pairs = [(member, b"", raw) for member, raw in zip(members, raws)]
            for member, score, raw in pairs:
                yield member, score, read_record(raw)
            if len(pairs) < batch:
                return
            last_member, last_score, _ = pairs[-1]
            if mode == "SCORE":
                low = b"(" + last_score
            elif mode == "LEX":
                low = b"(" + last_member
            else:
                high = b"(" + last_member

    def _keyset_page(self, zset, records, key: Callable[[object], Key], prefix: str, *, kind: str, sort_by: str,
                     sort_order: str, limit: int, cursor: str | None, matches, count: Callable[[], int],
                     business_id: str = "", customer_id: str = "") -> Page:
        """The memory store's `page_of`, on a sorted set of lexkey members (see sandbox.pagination)."""
        start, end = (b"[" + prefix.encode(), b"(" + prefix.encode() + b"\xff") if prefix else (b"-", b"+")
        if cursor is not None:
            try:
                decoded = Cursor.decode(cursor, kind)
                if (decoded.sort_by, decoded.sort_order) != (sort_by, sort_order):
                    raise InvalidCursor(f"was issued for sort_by={decoded.sort_by}&sort_order={decoded.sort_order}, "
                                        f"not sort_by={sort_by}&sort_order={sort_order}")
            except InvalidCursor as exc:
                raise InvalidInput(f"cursor {exc}", field="cursor") from None
            after = lexkey.encode(decoded.after, prefix)
            if sort_order == "DESC":
                end = b"(" + after
            else:
                start = b"(" + after
        descending = sort_order == "DESC"
        batch = limit + 1 if matches is None else max(limit + 1, 200)
        walk = self._walk(zset, records, "LEXREV" if descending else "LEX", start, end, batch, business_id, customer_id)
        items, has_more = take_page((record for _member, _score, record in walk), matches, limit)
        next_cursor = Cursor(sort_by, sort_order, key(items[-1]), kind).encode() if has_more else None
        return Page(items, next_cursor, has_more, sort_by, sort_order, count() if count else None)

    @mapped
    def list_credits(self, business_id: str, filters: CreditFilters, *, sort_by: str = "created_at",
                     sort_order: str = "ASC", limit: int = 100, cursor: str | None = None,
                     with_total: bool = False) -> Page:
        business_id = business_id.lower()
        customer_id = filters.customer_id.lower() if filters.customer_id is not None else None
        matches = filters.predicate()
        prefix = customer_id or ""

        def zset(k: Keys) -> str:
            bk = k.business(business_id)
            return bk.cix[sort_by] if customer_id else bk.ix[sort_by]

        def records(k: Keys) -> str:
            return k.business(business_id).cr

        def count() -> int:
            if matches is None:
                if customer_id is None:
                    return self.client.zcard(zset(self.keys))
                return self.client.zlexcount(zset(self.keys), b"[" + prefix.encode(), b"(" + prefix.encode() + b"\xff")
            low, high = (b"[" + prefix.encode(), b"(" + prefix.encode() + b"\xff") if prefix else (b"-", b"+")
            return sum(1 for _m, _s, credit in self._walk(zset, records, "LEX", low, high, 1000)
                       if credit is not None and matches(credit))

        return self._of_business(business_id, lambda: self._keyset_page(
            zset, records, lambda credit: sort_key(credit, sort_by), prefix, kind="customer_credits",
            sort_by=sort_by, sort_order=sort_order, limit=limit, cursor=cursor, matches=matches,
            count=count if with_total else None, business_id=business_id, customer_id=customer_id or ""),
            customer_id=filters.customer_id)

    def _of_business(self, business_id: str, list_page: Callable[[], Page], customer_id: str | None = None) -> Page:
        """A list of one business (and customer): `list_page()`, whose first script call checks that
        they exist, with a missing one said before anything else, as the memory store says it (a
        bad cursor included)."""
        try:
            return list_page()
        except InvalidInput:
            name, known = self._read(lambda p, k: p.hget(k.names, business_id),
                                     lambda p, k: p.hexists(k.business(business_id).cu, (customer_id or "-").lower()))
            missing = "business" if name is None else "customer" if customer_id is not None and not known else None
            if missing is None:
                raise
        except _Missing as exc:
            missing = exc.args[0]
        if missing == "business":
            raise NotFound(f"Business {business_id} not found", field="businessId", resource="business", id=business_id)
        raise NotFound(f"Customer {customer_id} not found", field="customer_id", resource="customer", id=customer_id)

    @mapped
    def list_invoices(self, business_id: str, filters: InvoiceFilters, *, sort_order: str = "ASC",
                      limit: int = 100, cursor: str | None = None, with_total: bool = False) -> Page:
        business_id = business_id.lower()
        customers = {}
        if filters.q is not None:  # `q` also searches the invoice's customer's names
            raw, = self._read(lambda p, k: p.hgetall(k.business(business_id).cu))
            customers = {customer_id.decode(): read_record(found) for customer_id, found in raw.items()}
        predicate = filters.predicate(customers)

        def zset(k: Keys) -> str:
            return k.business(business_id).inv_ix

        def records(k: Keys) -> str:
            return k.business(business_id).inv

        def count() -> int:
            if predicate is None:
                return self.client.zcard(zset(self.keys))
            return sum(1 for _m, _s, invoice in self._walk(zset, records, "LEX", b"-", b"+", 1000)
                       if invoice is not None and predicate(invoice))

        return self._of_business(business_id, lambda: self._keyset_page(
            zset, records, invoice_key, "", kind="invoices", sort_by="sent_at", sort_order=sort_order, limit=limit,
            cursor=cursor, matches=predicate, count=count if with_total else None, business_id=business_id))

    @mapped
    def list_customers(self, business_id: str, *, q: str | None = None, identity: str | None = None,
                       limit: int = 100, cursor: str | None = None) -> Page:
        business_id = business_id.lower()
        return self._of_business(business_id, lambda: self._customer_page(business_id, q, identity, limit, cursor))

    def _customer_page(self, business_id: str, q: str | None, identity: str | None, limit: int,
                       cursor: str | None) -> Page:
        low = b"-inf"
        if cursor is not None:
            try:
                decoded = Cursor.decode(cursor, "customers")
                _, position, after_id = decoded.after
                start = int(position) + 1
                score, = self._read(lambda p, k: p.zscore(k.business(business_id).cu_order, after_id))
                if ((decoded.sort_by, decoded.sort_order) != ("created_at", "ASC") or score is None
                        or int(score) != start - 1):
                    raise InvalidCursor("is not a cursor this sandbox issued for this list")
            except InvalidCursor as exc:
                raise InvalidInput(f"cursor {exc}", field="cursor") from None
            except ValueError:
                raise InvalidInput("cursor is not a cursor this sandbox issued for this list", field="cursor") from None
            low = f"({start - 1}".encode()
        listed = customer_listed(q, identity)
        batch = limit + 1 if q is None and identity is None else max(limit + 1, 200)
        walk = self._walk(lambda k: k.business(business_id).cu_order, lambda k: k.business(business_id).cu,
                          "SCORE", low, b"+inf", batch, business_id)
        taken, has_more = take_page(((score, customer) for _member, score, customer in walk),
                                    lambda pair: pair[1] is not None and listed(pair[1]), limit)
        items = [customer for _score, customer in taken]
        next_cursor = (Cursor("created_at", "ASC", (0, str(int(float(taken[-1][0]))), items[-1].id),
                              "customers").encode() if has_more else None)
        return Page(items, next_cursor, has_more, "created_at", "ASC", None)

    # ----------------------------------------------------------------------------- writes

    def _write(self, business_id: str, rules: Callable[[_Unit], object]):
        """Run the memory store's rules on a unit of work and commit its changes atomically,
        rerunning them on the new state when another write committed first.

        Every attempt's commit also sets this write's marker, `P:w:{write id}`, to the attempt's
        number, and every attempt WATCHes it. A commit whose answer was lost (Redis killed, the
        connection cut) is in doubt: the write waits for Redis (up to WRITE_TIMEOUT_SECONDS),
        and the marker then says whether, and which, attempt was applied; an attempt that
        arrives late can no longer apply, since the marker it would set is WATCHed. So a write is
        applied at most once, and answered as applied whenever it was."""
        business_id = business_id.lower()
        deadline = time.monotonic() + WRITE_TIMEOUT_SECONDS
        marker = f"{self.prefix}:w:{secrets.token_hex(12)}"
        results: dict[int, object] = {}
        attempt = 0
        in_doubt = False  # an earlier attempt's commit was sent and its answer lost
        while True:
            sent = False
            try:
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(self.keys.version, marker)
                        done = pipe.get(marker)
                        if done is not None:
                            return results[int(done)]
                        in_doubt = False  # no attempt applied; and the marker is WATCHed from here on
                        name, raw_ids = pipe.hget(self.keys.names, business_id), pipe.get(self.keys.ids)
                        if raw_ids is None:
                            raise Stale
                        if name is None:
                            raise NotFound(f"Business {business_id} not found", field="businessId",
                                           resource="business", id=business_id)
                        ids = restored_ids(raw_ids)
                        drawn = ids.drawn
                        unit = _Unit(pipe, self.keys, business_id, name.decode(), ids, self.clock)
                        try:
                            results[attempt] = result = rules(unit)
                        except StoreError:
                            if ids.drawn == drawn:
                                raise
                            # Refused after drawing ids: the memory store's generator keeps those
                            # draws, and so does this one (the same ids for the same requests).
                            pipe.multi()
                            pipe.set(self.keys.ids, dumps((ids.state(), ids.drawn)))
                            pipe.incr(self.keys.version)
                            pipe.execute()
                            raise
                        commands = unit.plan()
                        pipe.multi()
                        for command, *args in commands:
                            getattr(pipe, command)(*args)
                        if ids.drawn != drawn:
                            pipe.set(self.keys.ids, dumps((ids.state(), ids.drawn)))
                        pipe.incr(self.keys.version)
                        pipe.set(marker, attempt, ex=600)
                        sent = True
                        pipe.execute()
                        return result
                    except Stale:
                        self._follow()
                    except WatchError:
                        # A conflict, or (redis-py reports it the same way while WATCHing) the
                        # connection lost during EXEC, which Redis may have applied: the next
                        # attempt's marker read tells.
                        in_doubt = in_doubt or sent
            except UNAVAILABLE:
                if not (sent or in_doubt):
                    raise  # no commit was sent: a plain 503, nothing changed
                in_doubt = True
                self._await_redis(deadline)  # in doubt: the marker will tell
            attempt += 1
            if time.monotonic() > deadline:
                raise StoreBusy("the write lost the race for its namespace for too long; nothing was changed")
            if attempt > 2:
                time.sleep(random.uniform(0, min(2 ** attempt, 20)) / 1000)

    def _await_redis(self, deadline: float) -> None:
        """Wait for Redis to answer again; StoreUnavailable saying the write is in doubt if it does
        not before `deadline`. The worker waits on its own thread: it answers nothing else
        meanwhile (requests queue; with Redis gone they could only be 503s)."""
        while time.monotonic() < deadline:
            try:
                self.client.ping()
                return
            except UNAVAILABLE:
                time.sleep(0.05)
        raise StoreUnavailable("Redis went away while this write was being committed and did not come back "
                               "in time: it may have been applied; fetch before retrying (or retry a create "
                               "with the same external_id, an upsert)", in_doubt=True)

    @mapped
    def create_customer(self, business_id: str, params: dict) -> tuple[Customer, bool]:
        return self._write(business_id, lambda unit: MemoryStore.create_customer(unit, business_id, params))

    @mapped
    def update_customer(self, business_id: str, customer_id: str, params: dict) -> Customer:
        return self._write(business_id, lambda unit: MemoryStore.update_customer(unit, business_id, customer_id, params))

    @mapped
    def archive_customer(self, business_id: str, customer_id: str) -> Customer:
        return self._write(business_id, lambda unit: MemoryStore.archive_customer(unit, business_id, customer_id))

    @mapped
    def create_credit(self, business_id: str, params: dict) -> tuple[CustomerCredit, bool]:
        return self._write(business_id, lambda unit: MemoryStore.create_credit(unit, business_id, params))

    @mapped
    def update_credit(self, business_id: str, credit_id: str, params: dict) -> CustomerCredit:
        return self._write(business_id, lambda unit: MemoryStore.update_credit(unit, business_id, credit_id, params))

    @mapped
    def delete_credit(self, business_id: str, credit_id: str) -> CustomerCredit:
        return self._write(business_id, lambda unit: MemoryStore.delete_credit(unit, business_id, credit_id))
