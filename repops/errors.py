"""The repops exception hierarchy: one root, one subclass per thing that can go wrong.

Every error a caller can provoke (a bad spec, an untrusted bundle, a corrupt checkpoint)
is a subclass of `RepopsError` carrying a one-line message that says what is wrong.
This module must never import torch: callers catch these without loading training code.
"""

from __future__ import annotations

from dataclasses import dataclass


class RepopsError(Exception):
    """Root of every error raised on purpose by repops."""


@dataclass(frozen=True)
class FieldError:
    """One problem with a job spec: the dotted field path and why it is wrong."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class SpecInvalid(RepopsError):
    """The job spec cannot be turned into a program; `errors` names each bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid spec")


class BundleInvalid(RepopsError):
    """An operand bundle is malformed or does not prove its operands (untrusted input)."""


class CheckpointInvalid(RepopsError):
    """A checkpoint or serialized tensor file is malformed or does not fit the program."""


class DatasetInvalid(RepopsError):
    """A dataset file is malformed or cannot be built on this machine."""


class TapeError(RepopsError):
    """A program graph is inconsistent (shapes, dtypes, unknown op): a bug or a bad config."""
