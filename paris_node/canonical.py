"""Canonical JSON: the one byte encoding every signed record and content-stored document uses.

Rules (protocol/records.md): UTF-8, object keys sorted by code point, no insignificant whitespace,
non-ASCII characters written as themselves, no floats at all (counters and times are integers in
milliseconds; real-valued metrics travel as decimal strings, see `real`), no NaN/Infinity, no
duplicate keys, integers within +-2**53 so JavaScript readers agree.
"""

from __future__ import annotations

import json
import math
from typing import Any

from paris_node.errors import MalformedRecord

MAX_SAFE_INT = 2**53 - 1


def _check(obj: Any, path: str) -> None:
    if obj is None or isinstance(obj, (bool, str)):
        return
    if isinstance(obj, int):
        if abs(obj) > MAX_SAFE_INT:
            raise MalformedRecord(f"{path}: integer {obj} is outside +-2**53")
        return
    if isinstance(obj, float):
        raise MalformedRecord(f"{path}: floats are not allowed in canonical JSON; use an integer or real()")
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check(v, f"{path}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise MalformedRecord(f"{path}: object key {k!r} is not a string")
            _check(v, f"{path}.{k}")
        return
    raise MalformedRecord(f"{path}: {type(obj).__name__} cannot be encoded")


def canonical_json(obj: Any) -> bytes:
    """Encode `obj` canonically; MalformedRecord if it holds anything the rules forbid."""
    _check(obj, "$")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for k, v in pairs:
        if k in out:
            raise MalformedRecord(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_float(s: str) -> Any:
    raise MalformedRecord(f"float {s} is not allowed in canonical JSON")


def parse_canonical(data: bytes) -> Any:
    """Parse bytes that must be canonical JSON; re-encoding must give the same bytes."""
    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except UnicodeDecodeError as e:
        raise MalformedRecord(f"not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise MalformedRecord(f"not JSON: {e}") from None
    except RecursionError:
        raise MalformedRecord("JSON nested too deeply") from None
    try:
        again = canonical_json(obj)
    except RecursionError:
        raise MalformedRecord("JSON nested too deeply") from None
    if again != data:
        raise MalformedRecord("JSON is not in canonical form (sorted keys, no whitespace)")
    return obj


def real(x: float, digits: int = 7) -> str:
    """A real-valued metric as a canonical decimal string (`digits` significant digits)."""
    x = float(x)
    if not math.isfinite(x):
        raise MalformedRecord(f"metric {x} is not finite")
    return format(x, f".{digits}g")


def parse_real(s: str) -> float:
    try:
        x = float(s)
    except (TypeError, ValueError):
        raise MalformedRecord(f"not a decimal string: {s!r}") from None
    if not math.isfinite(x):
        raise MalformedRecord(f"metric {s!r} is not finite")
    return x
