"""End-to-end fixtures: the artifact store every role shares, and a ledger of WORK balances.

The store is the session's real js-ipfs daemon (Kubo RPC API), so CIDs, pins and fetches go
through the same HTTP path a deployed solver uses.
"""

from __future__ import annotations

import pytest

from market.ipfsd import IpfsDaemon
from market.store import ArtifactStore, open_store
from tests.e2e.ledger import Ledger
from tests.fixtures.dispute import DisputeEnv


@pytest.fixture
def ipfs_store(ipfs_daemon: IpfsDaemon) -> ArtifactStore:
    """A Kubo-RPC client of the session js-ipfs daemon."""
    return open_store(ipfs_daemon.api_url)


@pytest.fixture
def ledger(dispute_env: DisputeEnv) -> Ledger:
    return Ledger.take(dispute_env)
