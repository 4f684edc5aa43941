"""Byte-deterministic safetensors encoding (pure: bytes in, bytes out).

The safetensors library does not promise a stable header order, and a shard's CID must depend on
its content only. This writer emits the same format with a canonical header: tensors named in
sorted order, laid out in that order, header JSON with sorted keys and no whitespace, padded with
spaces to a multiple of 8. Any safetensors reader (Rust, Python, `safetensors.safe_open`) reads it.
"""

from __future__ import annotations

import json
import struct

import numpy as np

DTYPES = {
    np.dtype(np.uint8): "U8",
    np.dtype(np.int8): "I8",
    np.dtype(np.int16): "I16",
    np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64",
    np.dtype(np.float16): "F16",
    np.dtype(np.float32): "F32",
    np.dtype(np.float64): "F64",
}
NUMPY_OF = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 << 20  # safetensors' own limit


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """Encode `tensors` (little-endian, C order) and string `metadata` canonically."""
    header: dict[str, object] = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} is not supported")
        little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)  # no copy on little-endian machines
        data = memoryview(np.ascontiguousarray(little).reshape(-1).view(np.uint8))
        header[name] = {
            "dtype": DTYPES[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("safetensors metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    head = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def read_header(data: bytes | memoryview) -> tuple[dict, int]:
    """(header dict, offset of the data section). ValueError for anything malformed."""
    if len(data) < 8:
        raise ValueError("not a safetensors file: shorter than 8 bytes")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > MAX_HEADER or 8 + n > len(data):
        raise ValueError("not a safetensors file: header length out of range")
    try:
        header = json.loads(bytes(data[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a safetensors file: bad header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file: header is not an object")
    return header, 8 + n


def load_numpy(data: bytes | memoryview) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Decode every tensor (as read-only numpy views where possible) and the metadata. No pickle."""
    header, base = read_header(data)
    metadata = header.pop("__metadata__", None) or {}
    out = {}
    body = memoryview(data)[base:]
    for name, info in header.items():
        try:
            dtype = NUMPY_OF[info["dtype"]].newbyteorder("<")
            start, end = info["data_offsets"]
            shape = tuple(int(s) for s in info["shape"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"safetensors tensor {name!r}: bad header entry {info!r}") from None
        count = int(np.prod(shape)) if shape else 1
        if not 0 <= start <= end <= len(body) or end - start != count * dtype.itemsize:
            raise ValueError(f"safetensors tensor {name!r}: data offsets do not match its shape")
        out[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(shape)
    return out, metadata
