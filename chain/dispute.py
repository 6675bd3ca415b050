"""Typed clients for DisputeGame and ArbiterReferee.

One method per contract call, games read into a frozen `GameRecord` (the generated struct
`Game` plus its id).  Which move to make is decided elsewhere (arbiter/strategy.py); this
module only speaks to the contracts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount

from chain.client import ChainClient, Receipt
from chain.events import MAX_LOG_RANGE, decode_logs, latest_logs
from chain.generated import (
    ArtifactClaim,
    Dissected,
    Game,
    GameCreated,
    GameStatus,
    Member,
    Party,
    Ruling,
    RulingPhase,
)
from chain.types import Address, Cid, JobId

GameId = int

RULING_GAS = 3_000_000
"""Gas limit of a committee vote or settle: a deciding one reports to the game and the market
and may slash up to MAX_ARBITERS members (measured: 474 k for an overturn slashing two)."""


@dataclass(frozen=True)
class GameRecord(Game):
    """A game as DisputeGame stores it: the generated struct Game, plus the id it was read
    under and the views the roles ask of it."""

    game_id: GameId = field(kw_only=True)

    @property
    def finished(self) -> bool:
        return self.status in (GameStatus.SolverWon, GameStatus.ChallengerWon, GameStatus.Void)

    def clock_left(self, party: Party, now: int) -> int:
        """Seconds `party` has left at time `now` (its clock only runs on its turn)."""
        budget = self.solver_clock if party == Party.Solver else self.challenger_clock
        if self.turn != party or self.status not in (
            GameStatus.InProgress,
            GameStatus.AwaitingBundle,
        ):
            return budget
        return budget - (now - self.turn_started_at)


class DisputeGameClient:
    """Open games, move in them, time them out, read them."""

    NAME = "DisputeGame"

    def __init__(self, client: ChainClient, address: str, start_block: int = 0) -> None:
        self.client = client
        self.address = Address(client.w3.to_checksum_address(address))
        self.start_block = start_block
        """The contract's creation block: no event scan reaches below it."""
        self.log_page = MAX_LOG_RANGE
        """Most blocks one eth_getLogs asks for."""
        self._c = client.contract(self.NAME, address)

    def as_account(self, account: LocalAccount) -> DisputeGameClient:
        return DisputeGameClient(self.client.with_account(account), self.address, self.start_block)

    # ---------------------------------------------------------------- writes

    def challenge(self, job_id: JobId, arity: int) -> tuple[GameId, Receipt]:
        """Open a top-level game; nothing is needed from the solver."""
        receipt = self.client.transact(self._c.functions.challenge(job_id, arity))
        return receipt.one(GameCreated).game_id, receipt

    def challenge_availability(
        self, job_id: JobId, checkpoint: int, chunk: int
    ) -> tuple[GameId, Receipt]:
        fn = self._c.functions.challengeAvailability(job_id, checkpoint, chunk)
        receipt = self.client.transact(fn)
        return receipt.one(GameCreated).game_id, receipt

    def challenge_file(self, job_id: JobId, checkpoint: int) -> tuple[GameId, Receipt]:
        receipt = self.client.transact(self._c.functions.challengeFile(job_id, checkpoint))
        return receipt.one(GameCreated).game_id, receipt

    def prove_final_mismatch(
        self, job_id: JobId, last_leaf: bytes, proof: Sequence[bytes]
    ) -> tuple[GameId, Receipt]:
        fn = self._c.functions.proveFinalMismatch(job_id, last_leaf, list(proof))
        receipt = self.client.transact(fn)
        return receipt.one(GameCreated).game_id, receipt

    def challenge_at(
        self,
        job_id: JobId,
        arity: int,
        index: int,
        leaves: tuple[bytes, bytes],
        proofs: tuple[Sequence[bytes], Sequence[bytes]],
    ) -> tuple[GameId, Receipt]:
        fn = self._c.functions.challengeAt(
            job_id, arity, index, list(leaves), list(proofs[0]), list(proofs[1])
        )
        receipt = self.client.transact(fn)
        return receipt.one(GameCreated).game_id, receipt

    def dissect(
        self, game_id: GameId, hashes: Sequence[bytes], proofs: Sequence[Sequence[bytes]] = ()
    ) -> Receipt:
        fn = self._c.functions.dissect(game_id, list(hashes), [list(p) for p in proofs])
        return self.client.transact(fn)

    def select(self, game_id: GameId, part: int, hashes: Sequence[bytes]) -> Receipt:
        return self.client.transact(self._c.functions.select(game_id, part, list(hashes)))

    def open_op_level(self, game_id: GameId, op_count: int, last_op_hash: bytes) -> Receipt:
        fn = self._c.functions.openOpLevel(game_id, op_count, last_op_hash)
        return self.client.transact(fn)

    def post_bundle(self, game_id: GameId, bundle_cid: Cid) -> Receipt:
        return self.client.transact(self._c.functions.postBundle(game_id, bundle_cid))

    def answer_availability(
        self,
        game_id: GameId,
        file_root: bytes,
        files_proof: Sequence[bytes],
        length: int,
        chunk_root: bytes,
        data: bytes,
        chunk_proof: Sequence[bytes],
    ) -> Receipt:
        fn = self._c.functions.answerAvailability(
            game_id, file_root, list(files_proof), length, chunk_root, data, list(chunk_proof)
        )
        return self.client.transact(fn)

    def reveal_file(
        self,
        game_id: GameId,
        state_hash: bytes,
        state_proof: Sequence[bytes],
        file_root: bytes,
        files_proof: Sequence[bytes],
        file_cid: Cid,
    ) -> Receipt:
        fn = self._c.functions.revealFile(
            game_id, state_hash, list(state_proof), file_root, list(files_proof), file_cid
        )
        return self.client.transact(fn)

    def timeout(self, game_id: GameId) -> Receipt:
        return self.client.transact(self._c.functions.timeout(game_id))

    # ----------------------------------------------------------------- reads

    def get_game(self, game_id: GameId) -> GameRecord:
        raw = self.client.call(self._c.functions.getGame(game_id).call)
        return GameRecord.from_tuple(raw, game_id=game_id)

    def artifact_claim(self, game_id: GameId) -> ArtifactClaim:
        return ArtifactClaim.from_tuple(
            self.client.call(self._c.functions.artifactClaim(game_id).call)
        )

    def pending_dissection(self, game: GameRecord) -> tuple[bytes, ...] | None:
        """The hashes of the solver's dissection awaiting the challenger's selection."""
        if game.round_hash == bytes(32):
            return None
        # The pending dissection is the game's newest Dissected event: search back from the
        # latest block in bounded pages, never below the contract's creation block.
        logs = latest_logs(
            self.client.w3,
            [self.client.w3.to_checksum_address(self.address)],
            self.start_block,
            ["0x" + Dissected.topic.hex(), "0x" + game.game_id.to_bytes(32, "big").hex()],
            page=self.log_page,
        )
        events = [e.event for e in decode_logs(logs) if isinstance(e.event, Dissected)]
        if not events:
            return None
        return tuple(bytes(h) for h in events[-1].hashes)

    def boundaries(self, game_id: GameId) -> list[int]:
        return [int(p) for p in self.client.call(self._c.functions.boundaries(game_id).call)]

    def game_count(self) -> int:
        return int(self.client.call(self._c.functions.gameCount().call))

    def clock_budget(self) -> int:
        return int(self.client.call(self._c.functions.CLOCK_BUDGET().call))

    def level_extension(self) -> int:
        return int(self.client.call(self._c.functions.LEVEL_EXTENSION().call))


class ArbiterRefereeClient:
    """The staked arbiter committee: membership, votes, appeals, settlement."""

    NAME = "ArbiterReferee"

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Address(client.w3.to_checksum_address(address))
        self._c = client.contract(self.NAME, address)

    def as_account(self, account: LocalAccount) -> ArbiterRefereeClient:
        return ArbiterRefereeClient(self.client.with_account(account), self.address)

    # ---------------------------------------------------------------- writes

    def set_game(self, game: str) -> Receipt:
        return self.client.transact(self._c.functions.setGame(game))

    def join(self, arbiter: str) -> Receipt:
        """Stake ARBITER_STAKE from the signer for `arbiter` (approve the referee first)."""
        return self.client.transact(self._c.functions.join(arbiter))

    def leave(self) -> Receipt:
        return self.client.transact(self._c.functions.leave())

    def withdraw_stake(self) -> Receipt:
        return self.client.transact(self._c.functions.withdrawStake())

    def withdraw(self) -> Receipt:
        return self.client.transact(self._c.functions.withdraw())

    def vote(self, game_id: GameId, computed_hash: bytes) -> Receipt:
        # Not estimated: whether this vote decides (and so settles the game and the market,
        # slashing as it goes) depends on votes landing in the same block, which an estimate
        # on the pending state cannot see. RULING_GAS covers the costliest decision.
        fn = self._c.functions.vote(game_id, computed_hash)
        return self.client.transact(fn, gas=RULING_GAS)

    def appeal(self, game_id: GameId) -> Receipt:
        """Lock APPEAL_BOND from the signer (approve the referee first) and escalate."""
        return self.client.transact(self._c.functions.appeal(game_id))

    def settle(self, game_id: GameId) -> Receipt:
        return self.client.transact(self._c.functions.settle(game_id), gas=RULING_GAS)

    # ----------------------------------------------------------------- reads

    def _read(self, name: str, *args: Any) -> Any:
        return self.client.call(getattr(self._c.functions, name)(*args).call)

    def phase(self, game_id: GameId) -> RulingPhase:
        return RulingPhase(self._read("phase", game_id))

    def ruling(self, game_id: GameId) -> Ruling:
        return Ruling.from_tuple(self._read("rulingOf", game_id))

    def member(self, account: str) -> Member:
        return Member.from_tuple(self._read("members", account))

    def eligible(self, game_id: GameId, account: str) -> bool:
        return bool(self._read("eligible", game_id, account))

    def is_active(self, account: str) -> bool:
        return bool(self._read("isActive", account))

    def vote_of(self, game_id: GameId, arbiter: str) -> tuple[bool, bytes]:
        voted, computed = self._read("voteOf", game_id, arbiter)
        return bool(voted), bytes(computed)

    def tally(self, game_id: GameId, computed_hash: bytes) -> int:
        return int(self._read("tally", game_id, computed_hash))

    def committee(self) -> list[Address]:
        return [Address(a) for a in self._read("committee")]

    def escalation_deadline(self, game_id: GameId) -> int:
        return int(self._read("escalationDeadline", game_id))

    def credits(self, account: str) -> int:
        return int(self._read("credits", account))

    def total_burned(self) -> int:
        return int(self._read("totalBurned"))

    def total_credits(self) -> int:
        return int(self._read("totalCredits"))

    def settlement_bound(self) -> int:
        return int(self._read("settlementBound"))

    def ruling_window(self) -> int:
        return int(self._read("RULING_WINDOW"))

    def appeal_window(self) -> int:
        return int(self._read("APPEAL_WINDOW"))

    def escalation_window(self) -> int:
        return int(self._read("ESCALATION_WINDOW"))

    def appeal_bond(self) -> int:
        return int(self._read("APPEAL_BOND"))

    def arbiter_stake(self) -> int:
        return int(self._read("ARBITER_STAKE"))

    def quorum(self) -> int:
        return int(self._read("QUORUM"))

    def membership_delay(self) -> int:
        return int(self._read("MEMBERSHIP_DELAY"))
