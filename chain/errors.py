"""Exceptions raised by chain/: one root, `ChainError`, and one class per contract error.

A revert carrying a custom error is decoded into the class of the same name
(generated into chain/generated.py from the contracts' ABIs) with its arguments as
attributes, so callers write `except WrongStatus as e: e.args_by_name["actual"]`.  An
argument the contract declares with an enum type comes back as the generated IntEnum member
(`JobStatus.Open`, not `1`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any, ClassVar


class ChainError(Exception):
    """Root of every error chain/ raises."""


class NodeUnreachable(ChainError):
    """The JSON-RPC endpoint did not answer."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the chain node at {url}: {reason}")
        self.url = url


class TransactionTimeout(ChainError):
    """A transaction was sent but no receipt came within the wait (web3's TimeExhausted)."""

    def __init__(self, message: str, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TransactionUnknown(ChainError):
    """The node knows no transaction with this hash (dropped, or the chain was reset)."""


class NodeRejected(ChainError):
    """The node answered with a JSON-RPC error (nonce too low, insufficient funds, ...)."""


class BadNodeResponse(ChainError):
    """The node's answer could not be read (malformed JSON-RPC, undecodable call output)."""


class Web3Failure(ChainError):
    """Any other web3 error, kept as its type name and first line."""


class DevnetError(ChainError):
    """The local anvil devnet could not be started or stopped."""


class DeploymentError(ChainError):
    """A deployment file is missing or does not match the chain it names."""


class TransactionFailed(ChainError):
    """A transaction was mined but reverted without a decodable custom error."""

    def __init__(self, message: str, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class ContractRevert(ChainError):
    """A contract reverted with a custom error; subclasses are generated per error."""

    signature: ClassVar[str] = ""
    selector: ClassVar[bytes] = b""
    fields: ClassVar[tuple[str, ...]] = ()
    enum_types: ClassVar[tuple[type[IntEnum] | None, ...]] = ()
    """Per field, the IntEnum its Solidity type is (None for a plain value); empty if none is."""

    def __init__(self, values: tuple[Any, ...] = ()) -> None:
        if self.enum_types:
            values = (
                tuple(
                    kind(v) if kind is not None else v
                    for kind, v in zip(self.enum_types, values, strict=False)
                )
                + values[len(self.enum_types) :]
            )
        self.values = values
        self.args_by_name: Mapping[str, Any] = dict(zip(self.fields, values, strict=False))
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.args_by_name.items())
        super().__init__(f"{type(self).__name__}({shown})")


class UnknownRevert(ContractRevert):
    """A revert whose selector matches no error in our ABIs (raw data kept)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        super().__init__(())
        Exception.__init__(self, f"reverted with unknown data 0x{data.hex()}")


def _show(value: Any) -> str:
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
