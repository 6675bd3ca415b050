"""The referee: rules on games narrowed to one link by re-executing that link.

A `LinkOracle` computes the honest value at position lo + 1 of a game's level, given the
agreed value at lo: for real jobs by rebuilding the tape from the spec and re-executing
one operator from the solver's operand bundle (arbiter/repops_oracle.py), for synthetic
traces by looking it up.  The ruling is `computed == solver's hash_hi`; a bundle that is
missing or inconsistent with the agreed chain rules against the solver.

File games (GameKind.File) use the same rule: the solver revealed a file root (hash_lo), a
state hash (hash_hi) and the file's CID (bundle_cid); `computed` is the state hash the file
loads to (`file_state`), and a file that is missing, does not match the file root or does
not load rules against the solver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from arbiter.dissection import TraceView, position_value
from chain.client import Receipt
from chain.dispute import ArbiterRefereeClient, DisputeGameClient, GameId, GameRecord
from chain.generated import GameKind, GameStatus, RulingPhase
from repops.artifact import commit_file

log = logging.getLogger(__name__)

NO_VALUE = bytes(32)
"""Reported as the computed hash when the link does not exist or cannot be re-executed."""


class ArbiterError(Exception):
    """Root of the arbiter package's errors."""


class BundleRejected(ArbiterError):
    """The solver's operand bundle is missing, malformed or inconsistent: the solver loses."""


class LinkOracle(Protocol):
    def value_after(self, game: GameRecord) -> bytes | None:
        """The honest value at position game.lo + 1 (None: no such link exists).

        Raises BundleRejected when the solver's bundle cannot support a re-execution.
        """
        ...


@dataclass(frozen=True)
class Ruling:
    game_id: GameId
    solver_won: bool
    computed: bytes
    reason: str


def decide(game: GameRecord, oracle: LinkOracle) -> Ruling:
    """The ruling on a game awaiting one (pure apart from the oracle's re-execution)."""
    try:
        computed = oracle.value_after(game)
    except BundleRejected as exc:
        return Ruling(game.game_id, False, NO_VALUE, f"bundle rejected: {exc}")
    if computed is None:
        return Ruling(game.game_id, False, NO_VALUE, "the solver's link does not exist")
    won = computed == game.hash_hi
    reason = "re-execution matches the solver" if won else "re-execution contradicts the solver"
    return Ruling(game.game_id, won, computed, reason)


def file_state(game: GameRecord, data: bytes | None, load: Callable[[bytes], bytes]) -> bytes:
    """The state hash a File game's file loads to, `data` being what its CID holds (None:
    nothing). Raises BundleRejected when the file is missing, is not the committed one
    (its root differs from hash_lo) or does not load (`load` raises ValueError)."""
    if data is None:
        raise BundleRejected(f"checkpoint file {game.bundle_cid} unavailable")
    if commit_file(data).root != game.hash_lo:
        raise BundleRejected(f"checkpoint file {game.bundle_cid} is not the committed file")
    try:
        return load(data)
    except ValueError as exc:
        raise BundleRejected(f"checkpoint file {game.bundle_cid} does not load: {exc}") from exc


class TraceOracle:
    """An oracle that knows the honest trace outright (synthetic traces, tests, bench).

    File games read the file from `files` (CID -> bytes) and load it with `load`.
    """

    def __init__(
        self,
        honest: TraceView,
        files: Mapping[str, bytes] | None = None,
        load: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.honest = honest
        self.files = files or {}
        self.load = load or (lambda data: data[:32])

    def value_after(self, game: GameRecord) -> bytes | None:
        if game.kind == GameKind.File:
            return file_state(game, self.files.get(game.bundle_cid), self.load)
        return position_value(self.honest, game.level, game.base, game.lo + 1)


class Referee:
    """One committee member: votes on every game awaiting a ruling that it may vote on,
    appeals a proposed ruling that contradicts its own re-execution (when `appeal_wrong`),
    and settles rulings whose windows have passed (anyone may)."""

    def __init__(
        self,
        referee: ArbiterRefereeClient,
        games: DisputeGameClient,
        oracle: LinkOracle,
        *,
        appeal_wrong: bool = True,
    ) -> None:
        self.referee = referee
        self.games = games
        self.oracle = oracle
        self.appeal_wrong = appeal_wrong
        self.receipts: list[Receipt] = []
        self._mine: dict[GameId, Ruling] = {}

    @property
    def account(self) -> str:
        return self.referee.client.address

    def _now(self) -> int:
        return int(self.referee.client.w3.eth.get_block("latest")["timestamp"])

    def my_ruling(self, game: GameRecord) -> Ruling:
        """This member's ruling on `game` (re-executed once, then remembered)."""
        if game.game_id not in self._mine:
            self._mine[game.game_id] = decide(game, self.oracle)
        return self._mine[game.game_id]

    def vote_if_pending(self, game_id: GameId) -> Ruling | None:
        """Vote on `game_id` if it awaits a ruling this member may still vote on."""
        game = self.games.get_game(game_id)
        if game.status != GameStatus.AwaitingRuling:
            return None
        phase = self.referee.phase(game_id)
        if phase not in (RulingPhase.Voting, RulingPhase.Escalated):
            return None
        if phase == RulingPhase.Escalated and self._now() >= self.referee.escalation_deadline(
            game_id
        ):
            return None
        if not self.referee.eligible(game_id, self.account):
            return None
        if self.referee.vote_of(game_id, self.account)[0]:
            return None
        ruling = self.my_ruling(game)
        self.receipts.append(self.referee.vote(game_id, ruling.computed))
        log.info(
            "game %d: voted %s (%s)",
            game_id,
            "solver won" if ruling.solver_won else "challenger won",
            ruling.reason,
        )
        return ruling

    def appeal_if_wrong(self, game_id: GameId) -> bool:
        """Appeal a proposal that contradicts this member's own re-execution."""
        if not self.appeal_wrong or self.referee.phase(game_id) != RulingPhase.AppealOpen:
            return False
        record = self.referee.ruling(game_id)
        if self._now() >= record.proposed_at + self.referee.appeal_window():
            return False
        game = self.games.get_game(game_id)
        mine = self.my_ruling(game)
        if mine.computed == record.proposed_hash:
            return False
        self.receipts.append(self.referee.appeal(game_id))
        log.warning("game %d: appealed a proposed ruling that contradicts re-execution", game_id)
        return True

    def settle_if_due(self, game_id: GameId) -> bool:
        """Settle `game_id` once its last window has passed."""
        phase = self.referee.phase(game_id)
        now = self._now()
        if phase == RulingPhase.AppealOpen:
            record = self.referee.ruling(game_id)
            due = now > record.proposed_at + self.referee.appeal_window()
        elif phase == RulingPhase.Escalated:
            due = now > self.referee.escalation_deadline(game_id)
        else:
            return False
        if not due:
            return False
        self.receipts.append(self.referee.settle(game_id))
        log.info("game %d: ruling settled", game_id)
        return True

    def act(self, game_id: GameId) -> bool:
        """Whatever this member should do now on `game_id`; whether the ruling is settled."""
        self.vote_if_pending(game_id)
        self.appeal_if_wrong(game_id)
        self.settle_if_due(game_id)
        return self.referee.phase(game_id) == RulingPhase.Settled
