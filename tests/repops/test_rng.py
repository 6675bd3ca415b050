"""Counter-based RNG: a pure function of (seed, stream, counter)."""

from __future__ import annotations

import torch

from repops import rng


def test_bits32_pure_function_of_seed_stream_counter() -> None:
    c = torch.arange(1000)
    a = rng.bits32(5, 7, c)
    assert torch.equal(a, rng.bits32(5, 7, c))
    # Any element can be recomputed alone, in any order.
    assert torch.equal(rng.bits32(5, 7, c.flip(0)), a.flip(0))
    assert torch.equal(rng.bits32(5, 7, c[500:501]), a[500:501])
    assert not torch.equal(a, rng.bits32(6, 7, c))
    assert not torch.equal(a, rng.bits32(5, 8, c))
    assert not torch.equal(a, rng.bits32(5 + (1 << 32), 7, c))
    assert int(a.min()) >= 0 and int(a.max()) < 1 << 32
    assert len(set(a.tolist())) == 1000


def test_uniform_sym_and_randint_ranges_and_moments() -> None:
    u = rng.uniform_sym(1, rng.stream_id("x"), 100_000, torch.device("cpu"))
    assert u.dtype == torch.float32 and float(u.abs().max()) < 1.0
    assert abs(float(u.double().mean())) < 0.01
    assert abs(float(u.double().pow(2).mean()) - 1 / 3) < 0.01
    r = rng.randint(1, 2, 50_000, 10, torch.device("cpu"))
    counts = torch.bincount(r, minlength=10)
    assert int(r.min()) >= 0 and int(r.max()) <= 9
    assert float(counts.min()) > 4500
