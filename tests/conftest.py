"""Shared pytest set-up: fixture plugins that start real services on loopback ports."""

pytest_plugins = [
    "tests.fixtures.anvil",
    "tests.fixtures.ipfs",
    "tests.fixtures.dispute",
    "tests.fixtures.redis",
    "tests.fixtures.api",
]
