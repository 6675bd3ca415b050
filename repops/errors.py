"""The repops exception hierarchy: one root, one subclass per thing that can go wrong.

Every error a caller can provoke (a bad spec, an untrusted bundle, a corrupt checkpoint)
is a subclass of `RepopsError` carrying a one-line message that says what is wrong.
This module must never import torch: callers catch these without loading training code.
`FieldError` and the base of `SpecInvalid` come from the shared spec schema (`jobspec`).
"""

from __future__ import annotations

from jobspec import schema
from jobspec.schema import FieldError

__all__ = [
    "BundleInvalid",
    "CheckpointInvalid",
    "DatasetInvalid",
    "FieldError",
    "RepopsError",
    "SpecInvalid",
    "TapeError",
]


class RepopsError(Exception):
    """Root of every error raised on purpose by repops."""


class SpecInvalid(RepopsError, schema.SpecInvalid):
    """The job spec cannot be turned into a program; `errors` names each bad field.

    A subclass of `jobspec.schema.SpecInvalid` (where `FieldError` is defined too), so a
    caller that catches the shared error catches the engine's as well."""


class BundleInvalid(RepopsError):
    """An operand bundle is malformed or does not prove its operands (untrusted input)."""


class CheckpointInvalid(RepopsError):
    """A checkpoint or serialized tensor file is malformed or does not fit the program."""


class DatasetInvalid(RepopsError):
    """A dataset file is malformed or cannot be built on this machine."""


class TapeError(RepopsError):
    """A program graph is inconsistent (shapes, dtypes, unknown op): a bug or a bad config."""
