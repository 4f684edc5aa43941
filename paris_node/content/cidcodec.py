"""CID strings and bytes: parse, print, verify, follow links. Pure: no disk, no network.

Supported: CIDv0 and CIDv1 with codecs raw (0x55) and dag-pb (0x70), sha2-256; the identity hash only for
small raw blocks (the gateway probe `bafkqaaa`). Import these names from `paris_node.content.cid`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from multiformats import multibase

from paris_node.content import dagpb
from paris_node.content.errors import BlockMismatch, BlockTooLarge, MalformedCid, UnsupportedCid

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}

# Fast paths for the two multibases CIDs use in practice. multiformats' generic multibase codec validates types
# on every call (~10 ms per CID here), which would dominate import time; tests check these agree with it, and
# every other multibase prefix is decoded by multiformats.


def _b58encode(b: bytes) -> str:
    n = int.from_bytes(b, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(b) - len(b.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def _b58decode(s: str) -> bytes:
    n = 0
    for c in s:
        n = n * 58 + _B58_INDEX[c]  # KeyError on a bad character
    pad = len(s) - len(s.lstrip("1"))
    return b"\0" * pad + (n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")


def _b32encode(b: bytes) -> str:
    return "b" + base64.b32encode(b).decode().rstrip("=").lower()


def _mb_decode(s: str) -> bytes:
    if s[0] == "b":
        body = s[1:]
        if body != body.lower():
            raise ValueError("base32 CIDs are lower case")
        return base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    if s[0] == "z":
        return _b58decode(s[1:])
    return multibase.decode(s)


RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
IDENTITY = 0x00
MAX_BLOCK_SIZE = 2 * 1024 * 1024
MAX_IDENTITY_DIGEST = 128


@dataclass(frozen=True)
class CidInfo:
    version: int
    codec: int
    mh_code: int
    digest: bytes

    @property
    def multihash(self) -> bytes:
        return dagpb.varint(self.mh_code) + dagpb.varint(len(self.digest)) + self.digest

    @property
    def binary(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return b"\x01" + dagpb.varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return _b58encode(self.multihash)
        return _b32encode(self.binary)


def _check_supported(info: CidInfo, shown: str) -> CidInfo:
    if info.codec not in (RAW, DAG_PB):
        raise UnsupportedCid(
            f"CID {shown} has codec 0x{info.codec:x}; only raw (0x55) and dag-pb (0x70) are supported"
        )
    if info.mh_code == SHA2_256:
        if len(info.digest) != 32:
            raise MalformedCid(f"CID {shown}: a sha2-256 digest must be 32 bytes, not {len(info.digest)}")
    elif info.mh_code == IDENTITY:
        if info.codec != RAW or len(info.digest) > MAX_IDENTITY_DIGEST:
            raise UnsupportedCid(f"CID {shown}: identity hashes are supported only for small raw blocks")
    else:
        raise UnsupportedCid(f"CID {shown} uses multihash 0x{info.mh_code:x}; only sha2-256 is supported")
    return info


def decode_cid_bytes(buf: bytes | memoryview, pos: int = 0) -> tuple[CidInfo, int]:
    """Decode a binary CID at `pos` (as inside CARs and dag-pb links); returns (info, next position)."""
    try:
        if len(buf) - pos >= 34 and buf[pos] == SHA2_256 and buf[pos + 1] == 32:
            return CidInfo(0, DAG_PB, SHA2_256, bytes(buf[pos + 2 : pos + 34])), pos + 34
        version, p = dagpb.read_varint(buf, pos)
        if version != 1:
            raise MalformedCid(f"binary CID version {version} is not 0 or 1")
        codec, p = dagpb.read_varint(buf, p)
        code, p = dagpb.read_varint(buf, p)
        n, p = dagpb.read_varint(buf, p)
    except MalformedCid:
        raise
    except Exception as e:
        raise MalformedCid(f"truncated binary CID: {e}") from None
    if p + n > len(buf):
        raise MalformedCid("binary CID digest runs past the end")
    info = CidInfo(1, codec, code, bytes(buf[p : p + n]))
    return _check_supported(info, "(binary)"), p + n


def cid_from_bytes(b: bytes) -> str:
    """String form of a complete binary CID."""
    info, end = decode_cid_bytes(b)
    if end != len(b):
        raise MalformedCid("trailing bytes after binary CID")
    return str(info)


def parse_cid(s: str) -> CidInfo:
    """Parse a CID string (CIDv0 `Qm...` or multibase CIDv1). Raises MalformedCid or UnsupportedCid."""
    if not isinstance(s, str) or not s.strip():
        raise MalformedCid("empty CID: pass a CID such as Qm... or bafy...")
    s = s.strip()
    shown = s if len(s) <= 80 else s[:77] + "..."
    try:
        raw = _b58decode(s) if len(s) == 46 and s.startswith("Qm") else _mb_decode(s)
    except Exception:
        raise MalformedCid(f"{shown!r} is not a CID (not valid multibase/base58)") from None
    if len(s) == 46 and s.startswith("Qm"):
        if len(raw) != 34 or raw[:2] != b"\x12\x20":
            raise MalformedCid(f"{shown!r} is not a valid CIDv0 (expected a sha2-256 multihash)")
        return CidInfo(0, DAG_PB, SHA2_256, bytes(raw[2:]))
    if raw[:1] == b"\x12":
        raise MalformedCid(f"{shown!r}: CIDv0 must be written in base58btc (Qm...)")
    try:
        info, end = decode_cid_bytes(raw)
    except MalformedCid as e:
        raise MalformedCid(f"{shown!r} is not a valid CID: {e}") from None
    except UnsupportedCid as e:
        raise UnsupportedCid(str(e).replace("(binary)", shown)) from None
    if end != len(raw):
        raise MalformedCid(f"{shown!r} has trailing bytes after the multihash")
    return info


def to_v1(cid: str) -> str:
    """The CIDv1 base32 form (what `ipfs cid base32` prints)."""
    info = parse_cid(cid)
    return str(CidInfo(1, info.codec, info.mh_code, info.digest))


def multihash_of(cid: str) -> bytes:
    """The multihash bytes: identical for the v0 and v1 forms of one block (the blockstore key)."""
    return parse_cid(cid).multihash


def verify_block(cid: str | CidInfo, data: bytes | memoryview) -> None:
    """Raise BlockMismatch unless `data` hashes to `cid`; BlockTooLarge over MAX_BLOCK_SIZE."""
    info = parse_cid(cid) if isinstance(cid, str) else cid
    if len(data) > MAX_BLOCK_SIZE:
        raise BlockTooLarge(f"block {info} is {len(data)} bytes, over the {MAX_BLOCK_SIZE}-byte cap")
    ok = bytes(data) == info.digest if info.mh_code == IDENTITY else hashlib.sha256(data).digest() == info.digest
    if not ok:
        raise BlockMismatch(f"block bytes do not hash to {info}")


def block_links(cid: str | CidInfo, data: bytes) -> list[str]:
    """Child CIDs of a dag-pb block in link order; [] for raw blocks."""
    info = parse_cid(cid) if isinstance(cid, str) else cid
    if info.codec != DAG_PB:
        return []
    return [cid_from_bytes(link.cid) for link in dagpb.decode_pbnode(data).links]


def cid_str_from_binary(b: bytes) -> str:
    return _b58encode(b) if b[0] == SHA2_256 else _b32encode(b)
