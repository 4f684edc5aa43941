"""CIDs must equal what Kubo's `ipfs add` prints: the vector table of shared/reference/p2p-stack.md."""

from __future__ import annotations

import pytest
from conftest import chacha_stream, det_bytes

from paris_node.content.cid import (
    DEFAULT_PUBLISH_PROFILE,
    PROFILES,
    BlockMismatch,
    BlockTooLarge,
    FileImporter,
    MalformedCid,
    UnsupportedCid,
    block_links,
    file_cid,
    parse_cid,
    to_v1,
    verify_block,
)
from paris_node.errors import ParisError

K, M = 256 * 1024, 1024 * 1024

VECTORS = [
    (b"", "kubo-default", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
    (b"", "cid-v1", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"hello world", "kubo-default", "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"),
    (b"hello world\n", "kubo-default", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
    (b"hello world", "cid-v1", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    (("chunk-v0-seed", K), "kubo-default", "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE"),
    (("chunk-v0-seed", K + 1), "kubo-default", "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ"),
    (("v0-seed", 174 * K), "kubo-default", "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"),
    (("v0-seed", 174 * K + 1), "kubo-default", "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW"),
    (("chunk-v1-seed", M), "unixfs-v1-2025", "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta"),
    (("chunk-v1-seed", M + 1), "unixfs-v1-2025", "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64"),
    (("chunk-v0-seed", K), "cid-v1", "bafkreid33n22tcydu7pk2egzkyq4phh5mjwhyf6son6zggnlnlyi3257um"),
    (("chunk-v0-seed", K + 1), "cid-v1", "bafybeibyui7o3sbw3yifnewshhrbnuntcehluzvbkwgi5vmtsdobnc2c6y"),
    (("v0-seed", 174 * K), "cid-v1", "bafybeidajp2ewrtxcagm2u3qstbk2kw5srzbu7g7oraqepajpgumviz3z4"),
    (("v0-seed", 174 * K + 1), "cid-v1", "bafybeifr472xiwfk53w5s7bayijk3lq2go6ocqqcfch6ygy5qwza5hkdl4"),
    (("x", 3 * M + 7), "kubo-default", "QmSQvU6qqWNam6xdGwnQxG5UTiktjSzWaSzD6V3SK8NEFB"),
    (("x", 3 * M + 7), "cid-v1", "bafybeiacopkqmkdh55qutxss6tb4okrprc565jz3bvk6upax6f4lumh5nm"),
]


def _data(spec) -> bytes:
    return spec if isinstance(spec, bytes) else det_bytes(*spec)


@pytest.mark.parametrize("spec,profile,expected", VECTORS, ids=lambda v: str(v)[:24])
def test_vector(spec, profile, expected):
    assert file_cid(_data(spec), profile) == expected


SMALL = [v for v in VECTORS if isinstance(v[0], bytes) or v[0][1] < 8 * M]


@pytest.mark.parametrize("spec,profile,expected", SMALL[::2], ids=lambda v: str(v)[:24])
def test_vector_from_file_and_stored_blocks(tmp_path, spec, profile, expected):
    """The path form streams from disk; the block-emitting importer gives the same root and verifiable blocks."""
    p = tmp_path / "f"
    p.write_bytes(_data(spec))
    assert file_cid(p, profile) == expected
    imp = FileImporter(profile)
    blocks = imp.update(_data(spec))
    root, rest = imp.finish()
    assert root == expected
    for cid, block in blocks + rest:
        verify_block(cid, block)
    assert (blocks + rest)[-1][0] == root


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra,expected",
    [
        (0, "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm"),
        (1, "bafybeibdsi225ugbkmpbdohnxioyab6jsqrmkts3twhpvfnzp77xtzpyhe"),
    ],
)
def test_vector_1gib_unixfs_v1_2025(extra, expected):
    """1024 x 1 MiB (+1): the DAG-level boundary of unixfs-v1-2025, streamed 16 MiB at a time (~2-3 s)."""
    enc, zeros = chacha_stream("v1-2025-seed"), bytes(16 * M)
    imp = FileImporter("unixfs-v1-2025", emit_blocks=False)
    left = 1024 * M + extra
    while left:
        n = min(left, len(zeros))
        imp.update(enc.update(zeros[:n]))
        left -= n
    assert imp.finish()[0] == expected


def test_profiles():
    assert DEFAULT_PUBLISH_PROFILE == "unixfs-v1-2025"
    kd, v1, new = PROFILES["kubo-default"], PROFILES["cid-v1"], PROFILES["unixfs-v1-2025"]
    assert (kd.cid_version, kd.chunk_size, kd.max_links, kd.raw_leaves) == (0, 256 * 1024, 174, False)
    assert (v1.cid_version, v1.chunk_size, v1.max_links, v1.raw_leaves) == (1, 256 * 1024, 174, True)
    assert (new.cid_version, new.chunk_size, new.max_links, new.raw_leaves) == (1, M, 1024, True)


def test_to_v1_matches_ipfs_cid_base32():
    assert to_v1("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o") == (
        "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"
    )
    assert to_v1("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e").startswith("bafkrei")


def test_parse_cid_fields():
    v0 = parse_cid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    assert (v0.version, v0.codec, v0.mh_code, len(v0.digest)) == (0, 0x70, 0x12, 32)
    v1 = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    assert (v1.version, v1.codec, v1.mh_code) == (1, 0x55, 0x12)
    assert parse_cid(to_v1("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")).digest == v0.digest
    probe = parse_cid("bafkqaaa")
    assert (probe.codec, probe.mh_code, probe.digest) == (0x55, 0x00, b"")
    verify_block("bafkqaaa", b"")


@pytest.mark.parametrize(
    "bad", ["", "   ", "Qm123", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQ0", "bafy!!", "zzzz", "bafkreihdwdc"]
)
def test_malformed_cid(bad):
    with pytest.raises(MalformedCid) as e:
        parse_cid(bad)
    assert isinstance(e.value, ParisError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "cid",
    [
        "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # dag-cbor
    ],
)
def test_unsupported_cid(cid):
    with pytest.raises(UnsupportedCid) as e:
        parse_cid(cid)
    assert "0x71" in str(e.value) and isinstance(e.value, ValueError)


def test_unsupported_hash_function():
    from multiformats import CID, multihash

    sha512 = CID("base32", 1, "raw", multihash.digest(b"x", "sha2-512"))
    with pytest.raises(UnsupportedCid, match="sha2-256"):
        parse_cid(str(sha512))


def test_verify_block_and_links():
    imp = FileImporter("kubo-default")
    blocks = imp.update(det_bytes("x", K * 2 + 5))
    root, rest = imp.finish()
    blocks += rest
    by_cid = dict(blocks)
    links = block_links(root, by_cid[root])
    assert len(links) == 3 and all(c in by_cid for c in links)
    assert block_links(links[0], by_cid[links[0]]) == []
    with pytest.raises(BlockMismatch):
        verify_block(root, by_cid[root] + b"\0")
    with pytest.raises(BlockTooLarge):
        verify_block("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", bytes(2 * M + 1))


def test_string_forms_agree_with_multiformats():
    """cid.py encodes base58btc/base32 itself for speed; the multiformats package must agree on every form."""
    import hashlib

    from multiformats import CID, multihash

    for i in range(12):
        mh = multihash.wrap(hashlib.sha256(bytes([i]) * i).digest(), "sha2-256")
        for version, codec, base in ((0, "dag-pb", "base58btc"), (1, "dag-pb", "base32"), (1, "raw", "base32")):
            ref = CID(base, version, codec, mh)
            info = parse_cid(str(ref))
            assert str(info) == str(ref) and info.digest == bytes(ref.raw_digest)
            if version == 1:
                for other in ("base58btc", "base36", "base16"):  # other multibases parse to the same CID
                    assert str(parse_cid(str(ref.set(base=other)))) == str(ref)
