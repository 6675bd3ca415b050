"""GPU check: build the CUDA kernel, compare every op's bits and whole training steps
CPU vs GPU, and print the bench ratios vs torch fp32 and TF32 (run by bench/gpu_check.sh).

    python -m bench.gpu_check [--reps N]

Prints `PASS`/`FAIL` lines per op case, per model and per CUDA matmul kernel (the simple
and the register-tiled kernel, each forced, against the CPU kernel on strided wide-range
operands, and against each other on the bench shapes), `gpu_matmul_ratio_fp32: X`,
`gpu_matmul_ratio_tf32: X` (the kernel repops picks), `gpu_kernel_<shape>_<kernel>: ...`
(each kernel's TFLOP/s and its ratios to torch fp32 and TF32 at 4096^3 and two GPT-like
shapes), `gpu_step_ratio_<model>: X` (repops on GPU / torch fp32 on GPU, median of
interleaved per-rep ratios), and exits 1 if any bit differs.  Written without a GPU at
hand: UNVERIFIED until it has run on one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from bench.repops import SPECS, _setup
from repops import conformance, cuda_kernels, numerics
from repops.hashing import state_hash
from repops.matmul import KC, matmul
from repops.program import batch_for, init_state, train, train_step
from repops.torch_reference import TorchTwin, make_optimizer, torch_step
from repops.trace import replay_step, step_batch


def _sync_timed(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def _ratio(fa: Callable[[], object], fb: Callable[[], object], reps: int) -> float:
    fa()
    fb()
    return statistics.median(_sync_timed(fa) / _sync_timed(fb) for _ in range(reps))


def _median_s(fn: Callable[[], object], reps: int) -> float:
    fn()
    return statistics.median(_sync_timed(fn) for _ in range(reps))


def _same_bits(x: torch.Tensor, y: torch.Tensor) -> bool:
    """tensor_hash equality (NaNs canonicalised) computed on the device: the bench shapes'
    outputs are up to 400 MB, which tensor_hash would copy to the host and hash."""
    nx, ny = torch.isnan(x), torch.isnan(y)  # NaN payloads are unspecified
    xb = torch.where(nx, 0, x.view(torch.int32))
    yb = torch.where(ny, 0, y.view(torch.int32))
    return bool(torch.equal(nx, ny) and torch.equal(xb, yb))


# (nb, m, k, n, b transposed): 4096^3; a GPT MLP up-projection with the batch folded into
# rows (B 8 x T 1024, n_embd 768 -> 3072); attention scores q @ k^T per head (8 x 12
# heads, T 1024, head dim 64: k < KC, B a transposed view).
KERNEL_SHAPES = {
    "square4096": (1, 4096, 4096, 4096, False),
    "gpt_mlp": (1, 8192, 768, 3072, False),
    "gpt_attn": (96, 1024, 64, 1024, True),
}


def _kernel_checks() -> int:
    """Each CUDA kernel forced, vs the CPU kernel: strided wide-range operands, 2 chunks."""
    g = torch.Generator().manual_seed(1)
    nb, m, k, n = 2, 300, 2 * KC + 5, 200
    a = torch.randn(nb, m, k, generator=g) * torch.exp(5 * torch.randn(nb, m, k, generator=g))
    b = torch.randn(nb, k, n, generator=g) * torch.exp(5 * torch.randn(nb, k, n, generator=g))
    a.view(-1)[7] = float("inf")
    want = numerics.matmul(a, b)
    failures = 0
    for kern in ("simple", "tiled"):
        for label, x, y in [
            ("contiguous", a.cuda(), b.cuda()),
            ("transposed", a.cuda().mT.contiguous().mT, b.cuda().mT.contiguous().mT),
        ]:
            ok = _same_bits(cuda_kernels.matmul(x, y, KC, kern).cpu(), want)
            failures += not ok
            print(f"{'PASS' if ok else 'FAIL'} kernel {kern} == CPU kernel, {label}")
    return failures


def _bench_shape(name: str, x: torch.Tensor, y: torch.Tensor, reps: int) -> int:
    nb, m, k = x.shape
    tera = 2 * nb * m * k * y.shape[-1] / 1e12
    outs = {kern: cuda_kernels.matmul(x, y, KC, kern) for kern in ("simple", "tiled")}
    same = _same_bits(outs["simple"], outs["tiled"])
    print(f"{'PASS' if same else 'FAIL'} kernels simple == tiled, {name}")
    del outs

    def theirs() -> object:
        return torch.matmul(x, y)

    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        t = _median_s(theirs, reps)
        print(f"gpu_torch_{name}_{'tf32' if tf32 else 'fp32'}: {tera / t:.1f} TFLOP/s")
    for kern in ("simple", "tiled"):

        def ours(kern: str = kern) -> object:
            return cuda_kernels.matmul(x, y, KC, kern)

        ratios = []
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            ratios.append(_ratio(ours, theirs, reps))
        torch.backends.cuda.matmul.allow_tf32 = False
        t = _median_s(ours, reps)
        print(
            f"gpu_kernel_{name}_{kern}: {tera / t:.1f} TFLOP/s, "
            f"ratio_fp32 {ratios[0]:.2f}, ratio_tf32 {ratios[1]:.2f}"
        )
    return 0 if same else 1


def _kernel_bench(reps: int) -> int:
    """Each kernel's TFLOP/s and ratios to torch fp32 / TF32; FAIL if their bits differ."""
    failures = 0
    g = torch.Generator().manual_seed(2)
    for name, (nb, m, k, n, bt) in KERNEL_SHAPES.items():
        x = torch.randn(nb, m, k, generator=g).cuda()
        if bt:
            y = torch.randn(nb, n, k, generator=g).cuda().mT
        else:
            y = torch.randn(nb, k, n, generator=g).cuda()
        failures += _bench_shape(name, x, y, reps)
    return failures


def _step_ratio(name: str, reps: int) -> float:
    prog, ds = _setup(name)
    cur = {"s": init_state(prog, "cuda")}
    twin = TorchTwin(prog, {k: v.cuda() for k, v in init_state(prog).items()}).cuda()
    opt, sched = make_optimizer(twin)
    batches = [{k: v.cuda() for k, v in batch_for(prog, ds, t).items()} for t in range(4)]
    it = {"i": 0}

    def ours() -> None:
        cur["s"], _ = train_step(prog, cur["s"], ds, "cuda")

    def theirs() -> None:
        torch_step(twin, opt, sched, batches[it["i"] % 4])
        it["i"] += 1

    return _ratio(ours, theirs, reps)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("FAIL no CUDA device")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    t = time.perf_counter()
    from repops.cuda_kernels import _module

    _module()
    print(f"built the CUDA kernel in {time.perf_counter() - t:.0f} s")
    failures = 0
    cpu = {r.name: r for r in conformance.report("cpu")}
    for r in conformance.report("cuda"):
        ok = r.ok and cpu.get(f"{r.op}/{r.path.split('=')[-1]}", r).ok
        failures += not ok
        print(("PASS " if ok else "FAIL ") + r.line())
    for name in ("mlp", "gpt"):
        prog, ds = _setup(name)
        st, _ = train(prog, init_state(prog), ds, 1)
        batch = step_batch(prog, st, ds)
        a = replay_step(prog, st, batch, "cpu")
        b = replay_step(prog, st, batch, "cuda")
        bad = [
            j for j, (x, y) in enumerate(zip(a.out_hashes, b.out_hashes, strict=True), 1) if x != y
        ]
        if bad:
            node = prog.tape.nodes[prog.tape.chain[bad[0] - 1]]
            print(f"FAIL step {name}: {len(bad)} ops differ, first op {bad[0]} ({node.op.value})")
        s_cpu, _ = train(prog, init_state(prog), ds, 2, "cpu")
        s_gpu, _ = train(prog, init_state(prog, "cuda"), ds, 2, "cuda")
        same = state_hash(s_cpu) == state_hash(s_gpu)
        print(f"{'PASS' if same and not bad else 'FAIL'} state hash after 2 steps, {name}")
        failures += bool(bad) or not same
    failures += _kernel_checks()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 4096, generator=g).cuda()
    y = torch.randn(4096, 4096, generator=g).cuda()
    print(f"gpu_matmul_ratio_fp32: {_ratio(lambda: matmul(x, y), lambda: x @ y, args.reps):.2f}")
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"gpu_matmul_ratio_tf32: {_ratio(lambda: matmul(x, y), lambda: x @ y, args.reps):.2f}")
    torch.backends.cuda.matmul.allow_tf32 = False
    failures += _kernel_bench(args.reps)
    for name in SPECS:
        print(f"gpu_step_ratio_{name}: {_step_ratio(name, args.reps):.2f}")
    print("gpu check: " + ("all bits equal" if failures == 0 else f"{failures} FAILURES"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
