"""The errors of the artifact store.

`StoreError` is the one root: callers that only want "the artifact could not be
had" catch it; callers that act on the reason catch a subclass.  Every message
is one line that names the CID or the URL, because these errors reach users
(a mistyped CID, a daemon that is not running) and must never read like a
traceback.  This module must never import anything beyond the standard library.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every artifact-store error."""


class ArtifactUnusable(StoreError):
    """The named artifact cannot be had for a reason of its own, not the store's.

    A CID that does not parse, content nobody can serve, content that does not verify,
    that is larger than the reader allows or that is not a file: whoever published the
    CID is to blame.  Every other `StoreError` (above all `StoreUnreachable`) is the
    reader's own trouble and worth retrying.  A referee rules against a party whose
    artifact raises this; it never rules on any other store error.
    """


class InvalidCid(ArtifactUnusable, ValueError):
    """A string that is not a CID this store can verify (garbage, or an unsupported hash)."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"invalid CID {shown!r}: {reason}")


class ArtifactNotFound(ArtifactUnusable):
    """The store does not hold the block (or a block under it) and cannot fetch it."""

    def __init__(self, cid: str, where: str) -> None:
        self.cid = cid
        self.where = where
        super().__init__(f"artifact {cid} not found in {where}")


class StoreUnreachable(StoreError):
    """The IPFS daemon behind the store cannot be reached (after retries)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"IPFS daemon at {url} is unreachable: {reason}")


class IntegrityError(ArtifactUnusable):
    """Content does not match its CID: a corrupted, substituted or truncated block,
    a malformed DAG node, or a daemon that computed a different CID for an upload."""

    def __init__(self, cid: str, reason: str) -> None:
        self.cid = cid
        self.reason = reason
        super().__init__(f"integrity check failed for {cid}: {reason}")


class ArtifactTooLarge(ArtifactUnusable):
    """The file is larger than the reader's limit (read stops at the limit)."""

    def __init__(self, cid: str, limit: int) -> None:
        self.cid = cid
        self.limit = limit
        super().__init__(f"artifact {cid} is larger than the limit of {limit} bytes")


class NotAFile(ArtifactUnusable):
    """The CID names a UnixFS directory, symlink or other node that is not a file."""

    def __init__(self, cid: str, kind: str) -> None:
        self.cid = cid
        self.kind = kind
        super().__init__(f"{cid} is a UnixFS {kind}, not a file")
