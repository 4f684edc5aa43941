"""Signed records: one envelope for everything the network carries, and the payload of each kind.

Envelope (canonical JSON, protocol/records.md):
    {"v": 1, "kind": str, "run": str, "signer": node_id, "issued_ms": int, "payload": {...}, "sig": hex}
`sig` is Ed25519 over DOMAIN_TAG || canonical_json(envelope without "sig").
Readers ignore unknown payload fields, so newer peers can add fields without breaking older ones.
Pure module: no network, no disk.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from paris_node.canonical import canonical_json, parse_canonical
from paris_node.errors import (
    BadSignature,
    FutureRecord,
    MalformedRecord,
    RecordTooLarge,
    SchemaError,
    UnknownKind,
    UnsupportedVersion,
    WrongContext,
)
from paris_node.identity import Identity, public_from_node_id, verify_signature

SCHEMA_VERSION = 1
DOMAIN_TAG = b"paris-node/record/v1\n"
DHT_RECORD_CAP = 2048  # bytes; hivemind can crash its DHT process on calls over 16 KiB
DOCUMENT_CAP = 1 << 20  # bytes; run and checkpoint manifests live in the content store
MAX_FUTURE_SKEW_MS = 30_000


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------
#                                      Payload schemas
# ---------------------------------------------------------------------------------------------


def _check_type(value: Any, tp: Any, where: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for arm in typing.get_args(tp):
            try:
                return _check_type(value, arm, where)
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(f"{where}: {value!r} matches none of {tp}")
    if tp is type(None):
        if value is not None:
            raise SchemaError(f"{where}: expected null, got {type(value).__name__}")
        return
    if tp is Any:
        return
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp) or (Any,)
        for i, v in enumerate(value):
            _check_type(v, item, f"{where}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {type(value).__name__}")
        _, item = typing.get_args(tp) or (str, Any)
        for k, v in value.items():
            _check_type(v, item, f"{where}.{k}")
        return
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SchemaError(f"{where}: expected an integer, got {type(value).__name__}")
    if tp in (str, bool) and not isinstance(value, tp):
        raise SchemaError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """typing.get_type_hints, once per class (it re-evaluates every annotation string on each call)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


class Payload:
    """Base of the payload dataclasses. `from_dict` checks types and ignores unknown fields."""

    KIND: ClassVar[str]
    DHT: ClassVar[bool]  # True: travels in the DHT (small cap); False: a document stored by CID

    @classmethod
    def from_dict(cls, data: Any) -> Payload:
        if not isinstance(data, dict):
            raise SchemaError(f"{cls.KIND} payload must be an object")
        hints = _type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise SchemaError(f"{cls.KIND} payload: missing field {f.name!r}")
                continue
            _check_type(data[f.name], hints[f.name], f"{cls.KIND}.{f.name}")
            kwargs[f.name] = data[f.name]
        obj = cls(**kwargs)
        obj.validate()
        return obj

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Semantic checks beyond types; raise SchemaError."""


def job_of_expert(expert: int) -> str:
    return f"expert/{expert}"


ROUTER_JOB = "router"

# The lease states (one definition; `swarm/claims.py` decides with them, `LeasePayload` validates them).
CLAIMING, ACTIVE, RELEASED = "claiming", "active", "released"
LEASE_STATES = (CLAIMING, ACTIVE, RELEASED)


@dataclass(frozen=True)
class LeasePayload(Payload):
    """A claim on a job (`expert/<k>` or `router`) by `peer`, renewed with seq+1 at TTL/3."""

    KIND: ClassVar[str] = "lease"
    DHT: ClassVar[bool] = True
    STATES: ClassVar[tuple[str, ...]] = LEASE_STATES
    job: str
    peer: str
    lease_start_ms: int
    seq: int
    ttl_ms: int
    state: str

    def validate(self) -> None:
        if self.state not in self.STATES:
            raise SchemaError(f"lease.state must be one of {self.STATES}, got {self.state!r}")
        if self.seq < 0 or self.ttl_ms <= 0:
            raise SchemaError("lease.seq must be >= 0 and lease.ttl_ms > 0")


@dataclass(frozen=True)
class StatusPayload(Payload):
    """What a node is doing; re-announced by its announcer."""

    KIND: ClassVar[str] = "status"
    DHT: ClassVar[bool] = True
    role: str  # expert | router | standby | reader
    peer: str
    version: str
    job: str | None = None
    step: int = 0
    loss: str | None = None  # decimal string (canonical.real)
    samples_per_s: str | None = None
    checkpoint: str | None = None  # CID of the latest checkpoint manifest
    addrs: list[str] = field(default_factory=list)
    error: str | None = None  # why this node's last job failed (it released the lease with this reason)
    holds: list[str] = field(default_factory=list)  # checkpoint manifest CIDs it verified and serves (vouches)
    # the owner of each job as this node's lease watch sees it: job -> the first OWNER_ID_CHARS characters of the
    # holder's node id (swarm/claims.attested: a reader that joined through this node may trust it)
    owners: dict[str, str] = field(default_factory=dict)

    MAX_HOLDS: ClassVar[int] = 64
    MAX_OWNERS: ClassVar[int] = 32
    OWNER_ID_CHARS: ClassVar[int] = 20

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for optional in ("error", "holds", "owners"):  # absent unless set: records keep their bytes (test vectors)
            if not d[optional]:
                del d[optional]
        return d

    def validate(self) -> None:
        if len(self.holds) > self.MAX_HOLDS:
            raise SchemaError(f"status.holds lists {len(self.holds)} CIDs; at most {self.MAX_HOLDS}")
        if len(self.owners) > self.MAX_OWNERS:
            raise SchemaError(f"status.owners names {len(self.owners)} jobs; at most {self.MAX_OWNERS}")
        for job, holder in self.owners.items():
            if len(job) > 32 or len(holder) != self.OWNER_ID_CHARS:
                raise SchemaError(f"status.owners entry {job[:40]!r}: job of at most 32 characters, holder of "
                                  f"exactly {self.OWNER_ID_CHARS} (a node id's first characters)")  # fmt: skip


@dataclass(frozen=True)
class ProviderPayload(Payload):
    """`peer` serves the DAGs rooted at `cids` over the paris block-exchange protocol."""

    KIND: ClassVar[str] = "provider"
    DHT: ClassVar[bool] = True
    peer: str
    cids: list[str]
    addrs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PointerPayload(Payload):
    """The small DHT record naming a publisher's latest checkpoint manifest for a job."""

    KIND: ClassVar[str] = "pointer"
    DHT: ClassVar[bool] = True
    job: str
    manifest_cid: str
    step: int
    seq: int


@dataclass(frozen=True)
class CheckpointPayload(Payload):
    """A checkpoint manifest, stored by CID. `files` maps a file name to {cid, size, sha256, role}.

    `format` is the checkpoint format version (paris_node/checkpoint/format.py; 1 = files without roles).
    """

    KIND: ClassVar[str] = "checkpoint"
    DHT: ClassVar[bool] = False
    job: str
    step: int
    files: dict[str, dict[str, Any]]
    config_sha256: str
    cid_profile: str
    parent: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    format: int = 1

    def validate(self) -> None:
        for name, meta in self.files.items():
            if not isinstance(meta, dict):
                raise SchemaError(f"checkpoint.files.{name} must be an object")
            for key, tp in (("cid", str), ("size", int), ("sha256", str)):
                _check_type(meta.get(key), tp, f"checkpoint.files.{name}.{key}")
            if "role" in meta:
                _check_type(meta["role"], str, f"checkpoint.files.{name}.role")


@dataclass(frozen=True)
class RunPayload(Payload):
    """The run manifest, stored by CID; the run id is that CID. Fields grow with the data issue."""

    KIND: ClassVar[str] = "run"
    DHT: ClassVar[bool] = False
    name: str
    experts: int
    spec: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.experts < 1:
            raise SchemaError("run.experts must be >= 1")


PAYLOADS: dict[str, type[Payload]] = {
    cls.KIND: cls
    for cls in (LeasePayload, StatusPayload, ProviderPayload, PointerPayload, CheckpointPayload, RunPayload)
}


# ---------------------------------------------------------------------------------------------
#                                         Envelope
# ---------------------------------------------------------------------------------------------

_ENVELOPE_FIELDS = {"v": int, "kind": str, "run": str, "signer": str, "issued_ms": int, "payload": dict, "sig": str}


@dataclass(frozen=True)
class SignedRecord:
    kind: str
    run: str
    signer: str
    issued_ms: int
    payload: dict
    sig: str
    v: int = SCHEMA_VERSION

    @functools.cached_property
    def body(self) -> Payload:
        """The payload parsed into its dataclass (unknown fields dropped); parsed once per record."""
        return PAYLOADS[self.kind].from_dict(self.payload)

    def unsigned(self) -> dict:
        return {
            "v": self.v,
            "kind": self.kind,
            "run": self.run,
            "signer": self.signer,
            "issued_ms": self.issued_ms,
            "payload": self.payload,
        }

    def to_bytes(self) -> bytes:
        return canonical_json({**self.unsigned(), "sig": self.sig})


def signing_bytes(unsigned: dict) -> bytes:
    return DOMAIN_TAG + canonical_json(unsigned)


def cap_for(kind: str) -> int:
    return DHT_RECORD_CAP if PAYLOADS[kind].DHT else DOCUMENT_CAP


def sign_record(identity: Identity, payload: Payload, run: str = "", issued_ms: int | None = None) -> SignedRecord:
    """Sign `payload` as `identity`. Raises RecordTooLarge if the result would be over its kind's cap."""
    payload.validate()
    unsigned = {
        "v": SCHEMA_VERSION,
        "kind": payload.KIND,
        "run": run,
        "signer": identity.node_id,
        "issued_ms": now_ms() if issued_ms is None else issued_ms,
        "payload": payload.to_dict(),
    }
    record = SignedRecord(**unsigned, sig=identity.sign(signing_bytes(unsigned)).hex())
    size = len(record.to_bytes())
    if size > cap_for(payload.KIND):
        raise RecordTooLarge(f"{payload.KIND} record is {size} bytes, over its cap of {cap_for(payload.KIND)}")
    return record


def decode_record(
    data: bytes,
    *,
    kind: str | None = None,
    run: str | None = None,
    now: int | None = None,
    max_skew_ms: int = MAX_FUTURE_SKEW_MS,
) -> SignedRecord:
    """Decode and fully verify a record. Every failure is a typed RecordError naming the cause.

    `kind` / `run`, when given, must match (WrongContext otherwise). The payload is schema-checked.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedRecord(f"record must be bytes, got {type(data).__name__}")
    if len(data) > DOCUMENT_CAP:
        raise RecordTooLarge(f"record is {len(data)} bytes, over the document cap of {DOCUMENT_CAP}")
    obj = parse_canonical(bytes(data))
    if not isinstance(obj, dict):
        raise MalformedRecord("record must be a JSON object")
    for name, tp in _ENVELOPE_FIELDS.items():
        if name not in obj:
            raise SchemaError(f"record: missing field {name!r}")
        _check_type(obj[name], tp, f"record.{name}")
    if obj["v"] != SCHEMA_VERSION:
        raise UnsupportedVersion(f"record schema version {obj['v']} is not supported (this node reads v1)")
    if obj["kind"] not in PAYLOADS:
        raise UnknownKind(f"unknown record kind {obj['kind']!r}")
    if len(data) > cap_for(obj["kind"]):
        raise RecordTooLarge(f"{obj['kind']} record is {len(data)} bytes, over its cap of {cap_for(obj['kind'])}")
    extra = set(obj) - set(_ENVELOPE_FIELDS)
    if extra:
        raise SchemaError(f"record: unexpected envelope fields {sorted(extra)}")
    record = SignedRecord(**obj)
    _ = record.body  # schema check of the payload (cheap; before the signature so type errors are named as such)
    try:
        public = public_from_node_id(record.signer)
        sig = bytes.fromhex(record.sig)
    except ValueError as e:
        raise BadSignature(f"record signer or signature is malformed: {e}") from None
    if not verify_signature(public, sig, signing_bytes(record.unsigned())):
        raise BadSignature(f"signature does not verify for signer {record.signer}")
    now = now_ms() if now is None else now
    if record.issued_ms > now + max_skew_ms:
        raise FutureRecord(f"record issued {record.issued_ms - now} ms in the future (allowed skew {max_skew_ms} ms)")
    if kind is not None and record.kind != kind:
        raise WrongContext(f"expected a {kind} record, got {record.kind}")
    if run is not None and record.run != run:
        raise WrongContext(f"record is for run {record.run!r}, not {run!r}")
    return record
