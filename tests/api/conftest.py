"""The API test stack lives in tests/fixtures/api.py (a plugin, so that tests/dashboard
shares the same session stack).  The helpers are re-exported here for tests that import
them from `tests.api.conftest`; the fixtures themselves are not (re-registering them here
would start a second stack)."""

from tests.fixtures.api import (
    BASE_SPEC,
    DATASET,
    INITIAL_BALANCE,
    ONE,
    RELAYER,
    TERMS,
    ApiStack,
    Played,
    ServedApi,
    base_spec,
    play_synthetic_dispute,
    spec_path,
    wait_for,
)

__all__ = [
    "BASE_SPEC",
    "DATASET",
    "INITIAL_BALANCE",
    "ONE",
    "RELAYER",
    "TERMS",
    "ApiStack",
    "Played",
    "ServedApi",
    "base_spec",
    "play_synthetic_dispute",
    "spec_path",
    "wait_for",
]
