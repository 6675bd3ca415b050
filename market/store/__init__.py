"""Assay's artifact store: content-addressed files under Kubo-compatible CIDv1s.

Job specs, datasets, checkpoints, manifests and operand bundles are stored here
and always verified against their CID before use.  Two backends share one
interface and give byte-identical CIDs: `EmbeddedStore` (a local block
directory, the zero-setup default) and `KuboStore` (an IPFS daemon's RPC API).

    store = open_store("embedded:var/ipfs")      # or "http://127.0.0.1:5001"
    cid = store.add_file("ckpt.safetensors")
    store.get_file(cid, "ckpt.safetensors")      # verified, atomic

Nothing in this package may import training code (torch, repops).
"""

from market.store.base import ArtifactStore, Source
from market.store.cid import BlockRef, normalize_cid
from market.store.dag import CHUNK_SIZE, MAX_LINKS, UnixFSImporter, compute_cid
from market.store.embedded import EmbeddedStore
from market.store.errors import (
    ArtifactNotFound,
    ArtifactTooLarge,
    ArtifactUnusable,
    IntegrityError,
    InvalidCid,
    NotAFile,
    StoreError,
    StoreUnreachable,
)
from market.store.factory import open_store
from market.store.kubo import KuboStore

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactTooLarge",
    "ArtifactUnusable",
    "BlockRef",
    "EmbeddedStore",
    "IntegrityError",
    "InvalidCid",
    "KuboStore",
    "NotAFile",
    "Source",
    "StoreError",
    "StoreUnreachable",
    "UnixFSImporter",
    "compute_cid",
    "normalize_cid",
    "open_store",
]
