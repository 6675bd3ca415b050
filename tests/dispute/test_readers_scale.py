"""Event readers on a chain with many blocks: every scan starts at the contracts' creation
block and asks the node for a bounded range per eth_getLogs (MAX_LOG_RANGE = 10,000 by
default, what public RPC providers allow).  anvil's `anvil_mine` grows slower with the chain
(here ~1 s per 1,000 blocks at first, ~18 s per 1,000 after 5,000), so the chain gets a few
thousand extra blocks and the readers a page of 250: the same paging, many pages, in seconds."""

from __future__ import annotations

from typing import Any

import pytest

from chain.errors import NodeUnreachable
from chain.events import MAX_LOG_RANGE, LogCursor
from chain.generated import Dissected, GameCreated, GameStatus, Party
from tests.dispute.support import cheat_trace, open_match
from tests.fixtures.dispute import DisputeEnv

MANY_BLOCKS = 2_000
PAGE = 250


class RecordingEth:
    """web3's `eth` with every get_logs range recorded (the real node still answers)."""

    def __init__(self, eth: Any) -> None:
        self._eth = eth
        self.ranges: list[tuple[int, int]] = []

    def get_logs(self, query: Any) -> Any:
        self.ranges.append((int(query["fromBlock"]), int(query["toBlock"])))
        return self._eth.get_logs(query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._eth, name)


class RecordingWeb3:
    def __init__(self, w3: Any) -> None:
        self._w3 = w3
        self.eth = RecordingEth(w3.eth)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._w3, name)


def _mine(env: DisputeEnv, blocks: int) -> None:
    env.devnet._rpc("anvil_mine", [hex(blocks)])


def test_log_cursor_pages_from_the_deployment_block_over_many_blocks(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    w3 = RecordingWeb3(env.client.w3)
    start = env.deployment.block
    assert MAX_LOG_RANGE == 10_000
    cursor = LogCursor(w3, [env.game.address], start, GameCreated.topic, page=PAGE)
    first = open_match(env, cheat_trace(37, 12), arity=4)
    _mine(env, MANY_BLOCKS)
    second = open_match(env, cheat_trace(None), arity=4, challenger_index=1)
    _mine(env, MANY_BLOCKS // 2)
    found = [e.event.game_id for e in cursor.poll() if isinstance(e.event, GameCreated)]
    assert found == [first.game_id, second.game_id]
    latest = int(env.client.w3.eth.block_number)
    assert w3.eth.ranges[0][0] == start
    assert all(hi - lo + 1 <= PAGE for lo, hi in w3.eth.ranges)
    # Contiguous, no block read twice, up to the head.
    for (_, hi), (lo, _) in zip(w3.eth.ranges, w3.eth.ranges[1:], strict=False):
        assert lo == hi + 1
    assert w3.eth.ranges[-1][1] == latest
    assert len(w3.eth.ranges) >= (latest - start) // PAGE
    assert cursor.poll() == []  # nothing new: nothing read twice


def test_pending_dissection_found_many_blocks_later_in_bounded_pages(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4)
    match.step()  # the solver dissects; the challenger has not selected yet
    game = match.record()
    assert (game.status, game.turn) == (GameStatus.InProgress, Party.Challenger)
    _mine(env, MANY_BLOCKS)
    w3 = RecordingWeb3(env.client.w3)
    game_client = env.game
    original = game_client.client.w3
    game_client.client.w3 = w3  # type: ignore[assignment]
    game_client.log_page = PAGE
    try:
        hashes = game_client.pending_dissection(game)
    finally:
        game_client.client.w3 = original
        game_client.log_page = MAX_LOG_RANGE
    posted = match.solver.receipts[-1].one(Dissected).hashes
    assert hashes == tuple(bytes(h) for h in posted)
    assert all(hi - lo + 1 <= PAGE for lo, hi in w3.eth.ranges)
    assert min(lo for lo, _ in w3.eth.ranges) >= env.deployment.block
    assert len(w3.eth.ranges) >= MANY_BLOCKS // PAGE  # searched back page by page
    # The challenger can act on what it found.
    match.step()
    assert match.record().turn == Party.Solver


class FailingOnceEth(RecordingEth):
    """Records like RecordingEth, and fails the `fail_at`-th get_logs call once."""

    def __init__(self, eth: Any, fail_at: int) -> None:
        super().__init__(eth)
        self.fail_at = fail_at

    def get_logs(self, query: Any) -> Any:
        if len(self.ranges) + 1 == self.fail_at:
            self.fail_at = 0
            self.ranges.append((-1, -1))
            raise NodeUnreachable("http://node", "connection dropped")
        return super().get_logs(query)


def test_log_cursor_failing_mid_poll_loses_no_event_and_rereads_no_page(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    start = int(env.client.w3.eth.block_number) + 1
    first = open_match(env, cheat_trace(37, 12), arity=4)
    _mine(env, 3 * 20)
    second = open_match(env, cheat_trace(None), arity=4, challenger_index=1)
    w3 = RecordingWeb3(env.client.w3)
    w3.eth = FailingOnceEth(env.client.w3.eth, fail_at=3)  # after the page with `first`
    cursor = LogCursor(w3, [env.game.address], start, GameCreated.topic, page=20)

    with pytest.raises(NodeUnreachable):
        cursor.poll()
    found = [e.event.game_id for e in cursor.poll() if isinstance(e.event, GameCreated)]

    assert found == [first.game_id, second.game_id]
    read = [r for r in w3.eth.ranges if r != (-1, -1)]
    assert len(read) == len(set(read))
