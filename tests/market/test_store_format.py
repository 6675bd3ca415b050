"""The encoding layer: CID parsing, dag-pb/UnixFS bytes, and the balanced layout's shape."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.store import IntegrityError, InvalidCid, UnixFSImporter, compute_cid, normalize_cid
from market.store.cid import DAG_PB, RAW, BlockRef
from market.store.unixfs import (
    PBLink,
    UnixFSType,
    decode_pbnode,
    decode_unixfs,
    encode_file_data,
    encode_pbnode,
    encode_varint,
)

EMPTY_FILE_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
"""What `ipfs add --cid-version=1` (Kubo) prints for an empty file."""


def test_compute_cid_empty_file_matches_kubo_constant() -> None:
    assert compute_cid(b"").cid == EMPTY_FILE_CID


def test_compute_cid_single_chunk_is_raw_leaf_of_sha256() -> None:
    data = b"hello"
    ref = compute_cid(data)
    assert ref.codec == RAW
    assert ref.digest == hashlib.sha256(data).digest()


def test_compute_cid_one_byte_over_chunk_makes_dag_pb_root_with_two_links() -> None:
    blocks: dict[BlockRef, bytes] = {}
    importer = UnixFSImporter(lambda ref, data: blocks.__setitem__(ref, data))
    importer.write(b"\x01" * (256 * 1024 + 1))
    root = importer.finish()
    assert root.codec == DAG_PB
    node = decode_pbnode(blocks[root], root.cid)
    assert [link.tsize for link in node.links] == [256 * 1024, 1]
    assert node.data is not None
    unixfs = decode_unixfs(node.data, root.cid)
    assert unixfs.type == UnixFSType.FILE
    assert unixfs.filesize == 256 * 1024 + 1
    assert unixfs.blocksizes == (256 * 1024, 1)


def test_importer_175_chunks_makes_two_level_tree_with_single_leaf_parent() -> None:
    # Kubo's balanced layout: the 175th leaf gets its own depth-1 parent.
    blocks: dict[BlockRef, bytes] = {}
    importer = UnixFSImporter(lambda ref, data: blocks.__setitem__(ref, data), chunk_size=4)
    importer.write(b"abcd" * 175)
    root = importer.finish()
    top = decode_pbnode(blocks[root], root.cid)
    assert len(top.links) == 2
    first, second = (BlockRef.from_binary(link.hash, parent=root.cid) for link in top.links)
    assert len(decode_pbnode(blocks[first], first.cid).links) == 174
    assert len(decode_pbnode(blocks[second], second.cid).links) == 1


def test_importer_exactly_174_chunks_makes_one_node() -> None:
    blocks: dict[BlockRef, bytes] = {}
    importer = UnixFSImporter(lambda ref, data: blocks.__setitem__(ref, data), chunk_size=4)
    importer.write(b"wxyz" * 174)
    root = importer.finish()
    assert len(decode_pbnode(blocks[root], root.cid).links) == 174
    assert len(blocks) == 2  # one distinct leaf (all equal) + the root


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), max_size=8))
def test_importer_write_splitting_does_not_change_cid(data: bytes, cuts: list[int]) -> None:
    whole = UnixFSImporter(chunk_size=64, max_links=3)
    whole.write(data)
    pieces = UnixFSImporter(chunk_size=64, max_links=3)
    position = 0
    for cut in cuts:
        pieces.write(data[position : position + cut])
        position += cut
    pieces.write(data[position:])
    assert pieces.finish() == whole.finish()


def test_pbnode_encoding_is_links_then_data_and_round_trips() -> None:
    link = PBLink(BlockRef.for_block(RAW, b"x").binary, 1)
    data = encode_file_data(1, [1])
    block = encode_pbnode([link], data)
    assert block[0] == 0x12  # field 2 (Links) first, as Kubo writes it
    node = decode_pbnode(block, "test")
    assert node.links == (link,)
    assert node.data == data


def test_decode_pbnode_truncated_block_raises_integrity_error() -> None:
    block = encode_pbnode([PBLink(BlockRef.for_block(RAW, b"x").binary, 1)], b"\x08\x02")
    with pytest.raises(IntegrityError, match="malformed"):
        decode_pbnode(block[:-3], "test")


def test_decode_pbnode_unknown_field_raises_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="unexpected field 3"):
        decode_pbnode(b"\x18\x01", "test")


def test_encode_varint_multibyte_matches_protobuf() -> None:
    assert encode_varint(262144) == b"\x80\x80\x10"
    assert encode_varint(0) == b"\x00"


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxqu",  # truncated
        "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # dag-cbor
        "bafkr4ihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # blake2b
        "../../etc/passwd",
    ],
)
def test_parse_cid_garbage_or_unsupported_raises_invalid_cid(text: str) -> None:
    with pytest.raises(InvalidCid) as info:
        BlockRef.parse(text)
    assert "\n" not in str(info.value)


def test_normalize_cid_v0_and_base58_give_canonical_base32() -> None:
    assert normalize_cid("zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW") == EMPTY_FILE_CID
    v1 = normalize_cid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    assert v1.startswith("bafybei")


def test_verify_other_content_raises_integrity_error() -> None:
    ref = BlockRef.for_block(RAW, b"good")
    ref.verify(b"good")
    with pytest.raises(IntegrityError):
        ref.verify(b"evil")
