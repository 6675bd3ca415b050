"""Counter-based random numbers: a pure function of (seed, stream, counter).

There is no generator state: the value for counter c of stream s under seed k is
`mix(k, s, c)`, so any element can be recomputed alone, on any device, in any order.
The mixer works on 32-bit words held in int64 tensors; every multiplier is an odd
constant below 2**31, so no product reaches 2**63 and all arithmetic is exact integer
arithmetic (xor-shift and odd multiplication are bijections of the 32-bit words).

Streams are derived from names with sha256, never from Python's `hash`.
This module must never use torch's global generator or numpy's random module.
"""

from __future__ import annotations

import hashlib

import torch

M32 = 0xFFFFFFFF
_MUL = (0x2C1B3C6D, 0x297A2D39, 0x3D6B5A95, 0x1B873593)


def stream_id(name: str) -> int:
    """A 32-bit stream number from a name (first 4 bytes of sha256, big-endian)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big")


def _round(x: torch.Tensor, key: int, mul: int) -> torch.Tensor:
    x = torch.bitwise_xor(x, key & M32)
    x = torch.bitwise_xor(x, torch.bitwise_right_shift(x, 16))
    x = torch.bitwise_and(x * mul, M32)
    x = torch.bitwise_xor(x, torch.bitwise_right_shift(x, 13))
    x = torch.bitwise_and(x * _MUL[3], M32)
    return torch.bitwise_xor(x, torch.bitwise_right_shift(x, 16))


def bits32(seed: int, stream: int, counter: torch.Tensor) -> torch.Tensor:
    """Uniform 32-bit words (int64 in [0, 2**32)) for int64 counters in [0, 2**32)."""
    x = torch.bitwise_and(counter.to(torch.int64), M32)
    x = _round(x, seed & M32, _MUL[0])
    x = _round(x, (seed >> 32) & M32, _MUL[1])
    x = _round(x, stream & M32, _MUL[2])
    return _round(x, (seed ^ stream ^ 0x9E3779B9) & M32, _MUL[0])


def _round_int(x: int, key: int, mul: int) -> int:
    x ^= key & M32
    x ^= x >> 16
    x = (x * mul) & M32
    x ^= x >> 13
    x = (x * _MUL[3]) & M32
    return x ^ (x >> 16)


def bits32_int(seed: int, stream: int, counter: int) -> int:
    """`bits32` of one counter, in Python integers (the same words)."""
    x = _round_int(counter & M32, seed & M32, _MUL[0])
    x = _round_int(x, (seed >> 32) & M32, _MUL[1])
    x = _round_int(x, stream & M32, _MUL[2])
    return _round_int(x, (seed ^ stream ^ 0x9E3779B9) & M32, _MUL[0])


def round_keys(seed: int, stream: int) -> tuple[int, int, int, int]:
    """The four 32-bit round keys `bits32(seed, stream, .)` xors in, in order."""
    return seed & M32, (seed >> 32) & M32, stream & M32, (seed ^ stream ^ 0x9E3779B9) & M32


def uniform_sym(seed: int, stream: int, n: int, device: torch.device) -> torch.Tensor:
    """n float32 values uniform on (-1, 1): (2u + 1 - 2**24) / 2**24 with u the top 24 bits."""
    c = torch.arange(n, dtype=torch.int64, device=device)
    u = torch.bitwise_right_shift(bits32(seed, stream, c), 8)
    # Exact in float32: an odd integer below 2**25 times a power of two.
    return ((2 * u + 1 - (1 << 24)).to(torch.float32)) * (2.0**-24)


def randint(seed: int, stream: int, n: int, high: int, device: torch.device) -> torch.Tensor:
    """n int64 values in [0, high): the 32-bit word modulo high (high <= 2**31)."""
    if not 0 < high <= 1 << 31:
        raise ValueError(f"randint high={high} out of range")
    c = torch.arange(n, dtype=torch.int64, device=device)
    return torch.remainder(bits32(seed, stream, c), high)
