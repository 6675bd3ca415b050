"""End-to-end helpers: publish real jobs (spec + dataset on the store), run the roles
in-process against the session anvil, and step the chain clock when everyone is idle."""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from arbiter.referee import Referee
from arbiter.repops_oracle import RepopsOracle
from arbiter.whistleblower import Whistleblower
from chain.client import Receipt
from chain.contracts import JobTerms
from chain.types import Cid, Hash32, JobId, Wei
from jobspec.factory import mlp_spec
from market.store import ArtifactStore
from repops import data as data_mod
from roles.realtrace import Stepper
from solver.node import SolverNode
from solver.settings import SolverSettings
from tests.fixtures.dispute import BOND, REWARD, STAKE, DisputeEnv

MLP_SPEC: dict[str, Any] = mlp_spec()
WINDOW_S = 600


@cache
def digits_bytes() -> bytes:
    return data_mod.build_digits()


def canonical(spec: dict[str, Any]) -> bytes:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def publish_job(env: DisputeEnv, store: ArtifactStore, **overrides: Any) -> JobId:
    """Pin the digits dataset and an MLP spec, post the job; returns its id."""
    spec = copy.deepcopy(MLP_SPEC)
    spec.update(
        {k: v for k, v in overrides.items() if k in ("steps", "checkpoint_interval", "seed")}
    )
    if "hidden" in overrides:
        spec["program"]["model"]["config"]["hidden"] = list(overrides["hidden"])
    dataset = overrides.get("dataset_bytes")
    spec["data"]["cid"] = str(store.add_bytes(digits_bytes() if dataset is None else dataset))
    return post_spec(env, store, spec, submit_window=int(overrides.get("submit_window", 3_600)))


def post_spec(
    env: DisputeEnv, store: ArtifactStore, spec: dict[str, Any], submit_window: int = 3_600
) -> JobId:
    """Pin the canonical bytes of `spec` (its artifacts already in `store`), post the job."""
    raw = canonical(spec)
    spec_cid = store.add_bytes(raw)
    terms = JobTerms(
        spec_hash=Hash32(hashlib.sha256(raw).digest()),
        spec_cid=Cid(spec_cid),
        reward=Wei(REWARD),
        solver_stake=Wei(STAKE),
        challenger_bond=Wei(BOND),
        claim_deadline=env.devnet.timestamp() + 3_600,
        submit_window=submit_window,
        challenge_window=WINDOW_S,
        steps_per_checkpoint=spec["checkpoint_interval"],
        checkpoint_count=spec["steps"] // spec["checkpoint_interval"] + 1,
    )
    job_id, _ = env.market.as_account(env.submitter).post_job(terms)
    return job_id


def solver_node(
    env: DisputeEnv,
    store: ArtifactStore,
    state_dir: Path,
    index: int = 0,
    stepper: Stepper | None = None,
    world_size: int = 1,
    **options: Any,
) -> SolverNode:
    client = env.client.with_account(env.solver(index))
    settings = SolverSettings(
        state_dir=state_dir, device="cpu", poll_interval=0.0, world_size=world_size
    )
    return SolverNode(client, env.deployment, store, settings, stepper=stepper, **options)


def whistleblower(
    env: DisputeEnv,
    store: ArtifactStore,
    index: int = 0,
    stepper: Stepper | None = None,
    state_dir: Path | None = None,
    **options: Any,
) -> Whistleblower:
    client = env.client.with_account(env.challenger(index))
    where = state_dir if state_dir is not None else Path(tempfile.mkdtemp(prefix="wb-"))
    return Whistleblower(
        client, env.deployment, store, state_dir=where, stepper=stepper, arity=4, **options
    )


@dataclass
class Committee:
    """The founding committee, every member re-executing from the store (repops oracle)."""

    members: list[Referee]

    @property
    def receipts(self) -> list[Receipt]:
        return [r for member in self.members for r in member.receipts]

    def rule(self, game_id: int) -> bool:
        """Members vote until the ruling on `game_id` is decided; whether any voted."""
        voted = False
        for member in self.members:
            if member.vote_if_pending(game_id) is not None:
                voted = True
        return voted


def referee(env: DisputeEnv, store: ArtifactStore) -> Committee:
    members = []
    for account in env.arbiters:
        client = env.client.with_account(account)
        oracle = RepopsOracle(store, env.deployment.market(client))
        game = env.deployment.game(client)
        members.append(Referee(env.deployment.referee(client), game, oracle))
    return Committee(members)


def rule_all(env: DisputeEnv, ref: Committee) -> int:
    ruled = 0
    for game_id in range(1, env.game.game_count() + 1):
        if ref.rule(game_id):
            ruled += 1
    return ruled


def run_market(
    env: DisputeEnv,
    ticks: Iterable[Callable[[], None]],
    ref: Committee,
    done: Callable[[], bool],
    max_rounds: int = 60,
) -> int:
    """Tick every role until `done()`; when a round changes nothing, move time forward."""
    actions = list(ticks)
    for rounds in range(1, max_rounds + 1):
        block_before = env.devnet.web3().eth.block_number
        for tick in actions:
            tick()
        rule_all(env, ref)
        if done():
            return rounds
        if env.devnet.web3().eth.block_number == block_before:
            env.devnet.increase_time(WINDOW_S // 2)
    raise AssertionError(f"market did not settle in {max_rounds} rounds")
