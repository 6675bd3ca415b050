"""Decode EVM logs into the frozen event dataclasses generated from the contracts' ABIs.

Pure functions over log records: no RPC here, so the indexer and the tests decode the same
way whether logs come from a receipt or from `eth_getLogs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address

from chain.generated import EVENTS_BY_TOPIC, ContractEvent

E = TypeVar("E", bound=ContractEvent)


@dataclass(frozen=True)
class EventLog:
    """A decoded event with where it was emitted."""

    event: ContractEvent
    address: str
    block_number: int
    tx_hash: bytes
    log_index: int


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _normalize(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.startswith("bytes") and isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, list):
        return tuple(value)
    return value


def decode_event(topics: Sequence[Any], data: Any) -> ContractEvent | None:
    """The event a log carries, or None if its topic is not one of our events."""
    if not topics:
        return None
    event_cls = EVENTS_BY_TOPIC.get(_as_bytes(topics[0]))
    if event_cls is None:
        return None
    indexed = [(n, t) for n, t, idx in event_cls.abi_inputs if idx]
    plain = [(n, t) for n, t, idx in event_cls.abi_inputs if not idx]
    values: dict[str, Any] = {}
    for (name, abi_type), topic in zip(indexed, topics[1:], strict=True):
        (values[name],) = abi_decode([abi_type], _as_bytes(topic))
    decoded = abi_decode([t for _, t in plain], _as_bytes(data)) if plain else ()
    for (name, _), value in zip(plain, decoded, strict=True):
        values[name] = value
    kwargs = {name: _normalize(t, values[name]) for name, t, _ in event_cls.abi_inputs}
    return event_cls(**kwargs)


def decode_logs(logs: Iterable[Mapping[str, Any]]) -> list[EventLog]:
    """Decode every log of ours (others are skipped) in the order given."""
    out: list[EventLog] = []
    for entry in logs:
        event = decode_event(entry["topics"], entry["data"])
        if event is None:
            continue
        out.append(
            EventLog(
                event=event,
                address=to_checksum_address(entry["address"]),
                block_number=int(entry["blockNumber"]),
                tx_hash=_as_bytes(entry["transactionHash"]),
                log_index=int(entry["logIndex"]),
            )
        )
    return out


def only(events: Iterable[ContractEvent | EventLog], kind: type[E]) -> list[E]:
    """The events of one type, in order."""
    found: list[E] = []
    for item in events:
        event = item.event if isinstance(item, EventLog) else item
        if isinstance(event, kind):
            found.append(event)
    return found


MAX_LOG_RANGE = 10_000
"""Most blocks one eth_getLogs may span: public RPC providers cap ranges at about this."""


def _query(
    addresses: Sequence[str], from_block: int, to_block: int, topics: Sequence[Any] | None
) -> dict[str, Any]:
    query: dict[str, Any] = {
        "address": list(addresses),
        "fromBlock": from_block,
        "toBlock": to_block,
    }
    if topics:
        query["topics"] = list(topics)
    return query


def get_logs_paged(
    w3: Any,
    addresses: Sequence[str],
    from_block: int,
    to_block: int,
    topics: Sequence[Any] | None = None,
    page: int = MAX_LOG_RANGE,
) -> list[Any]:
    """Raw logs of blocks [from_block, to_block], fetched in ranges of at most `page`
    blocks, oldest first."""
    if page < 1:
        raise ValueError(f"page must be at least 1 block, not {page}")
    logs: list[Any] = []
    start = from_block
    while start <= to_block:
        end = min(to_block, start + page - 1)
        logs.extend(w3.eth.get_logs(_query(addresses, start, end, topics)))
        start = end + 1
    return logs


def latest_logs(
    w3: Any,
    addresses: Sequence[str],
    from_block: int,
    topics: Sequence[Any] | None = None,
    page: int = MAX_LOG_RANGE,
) -> list[Any]:
    """The logs of the newest page (searching back from the latest block to `from_block`,
    one range of at most `page` blocks at a time) that holds any match; [] if none does.

    For "the last event of this kind": usually one request, however long the chain."""
    if page < 1:
        raise ValueError(f"page must be at least 1 block, not {page}")
    end = int(w3.eth.block_number)
    while end >= from_block:
        start = max(from_block, end - page + 1)
        logs = list(w3.eth.get_logs(_query(addresses, start, end, topics)))
        if logs:
            return logs
        end = start - 1
    return []


class LogCursor:
    """The events some contracts emitted since the last poll, with no block missed or
    read twice: each poll covers (last block read, latest block], in eth_getLogs ranges of
    at most `page` blocks, starting at `from_block` (the deployment block)."""

    def __init__(
        self,
        w3: Any,
        addresses: Sequence[str],
        from_block: int,
        topic: bytes | None = None,
        page: int = MAX_LOG_RANGE,
    ) -> None:
        self.w3 = w3
        self.addresses = [w3.to_checksum_address(a) for a in addresses]
        self.next_block = from_block
        self.topic = topic
        self.page = page
        self._carried: list[EventLog] = []

    def poll(self) -> list[EventLog]:
        latest = int(self.w3.eth.block_number)
        # Pages read by a poll that then failed are returned by the next one.
        out, self._carried = self._carried, []
        if latest < self.next_block:
            return out
        topics = None if self.topic is None else ["0x" + self.topic.hex()]
        start = self.next_block
        try:
            while start <= latest:
                # One page at a time, advancing the cursor after each: a failure mid-way
                # loses nothing (the pages read are carried) and re-reads nothing.
                end = min(latest, start + self.page - 1)
                page = get_logs_paged(self.w3, self.addresses, start, end, topics)
                out.extend(decode_logs(page))
                self.next_block = end + 1
                start = end + 1
        except BaseException:
            self._carried = out
            raise
        return out
