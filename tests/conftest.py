"""Shared pytest set-up: fixture plugins that start real services on loopback ports, and a
Hypothesis profile for CI."""

import os

from hypothesis import settings

# CI replays one fixed set of examples per property (derived from each test's name), so a
# green run stays green and the coverage the market state machine asserts cannot flake;
# local runs keep drawing new examples.  No example database under CI: examples a
# checkout saved earlier (.hypothesis/) would be replayed first and change the path, so a
# local CI=true run would not be the run a fresh clone makes.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.anvil",
    "tests.fixtures.ipfs",
    "tests.fixtures.dispute",
    "tests.fixtures.redis",
    "tests.fixtures.api",
]
