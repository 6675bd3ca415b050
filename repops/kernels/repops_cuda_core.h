// The arithmetic of the repops-2 CUDA matmul, one header for two compilers.
//
// With nvcc (__CUDACC__) the phase functions are __device__ code that the __global__ kernel
// in repops_cuda.cu calls, with __syncthreads() between phases.  With g++ they are plain
// host C++ (`__fmaf_rn` -> std::fmaf, `__fadd_rn` -> `+` under -ffp-contract=off) that
// tests/support/cuda_host_emu.cpp runs block by block, thread by thread, in the order the
// barriers allow, so the host emulation executes the same source lines as the device.
//
// Semantics (repops/matmul.py): output element (bi, i, j) is one thread; for each chunk of
// KC consecutive k, increasing, an fmaf chain from +0; C = P_0, then C = C + P_c left to
// right.  The shared tiles hold TILE k values at a time; a chunk may span tiles (its
// accumulator lives in a register across them), so the tile size never changes a bit.

#ifndef REPOPS_CUDA_CORE_H_
#define REPOPS_CUDA_CORE_H_

#include <cstdint>

#if defined(__CUDACC__)
#define REPOPS_DEV __device__ __forceinline__
#define REPOPS_FMA(x, y, z) __fmaf_rn((x), (y), (z))
#define REPOPS_ADD(x, y) __fadd_rn((x), (y))
#else
#include <cmath>
#define REPOPS_DEV inline
#define REPOPS_FMA(x, y, z) std::fmaf((x), (y), (z))
#define REPOPS_ADD(x, y) ((x) + (y))  // one IEEE add: the host build has -ffp-contract=off
#endif

namespace repops_cuda {

constexpr int TILE = 16;  // threads per block edge and k values per shared tile

// Grid limits of every CUDA device since compute 3.0 (y and z; x is 2^31 - 1).
constexpr int64_t MAX_GRID_YZ = 65535;

// One batched matmul: c (nb, m, n) contiguous = a (nb, m, k) x b (nb, k, n), any strides
// (in elements) for a and b.
struct Geo {
  const float* a;
  const float* b;
  float* c;
  int64_t nb, m, k, n;
  int64_t sab, sam, sak;
  int64_t sbb, sbk, sbn;
  int64_t kc;
};

// A block's shared memory (the +1 column keeps column reads off one bank).
struct Tiles {
  float as[TILE][TILE + 1];  // as[ty][t] = A[i of row ty][k0 + t]
  float bs[TILE][TILE + 1];  // bs[t][tx] = B[k0 + t][j of column tx]
};

// A thread's registers that live across tiles.
struct Acc {
  float out;    // C so far: the sum of the finished chunk partials
  float acc;    // the partial of the chunk in progress
  int64_t end;  // where (exclusive) that chunk ends: no integer division anywhere
};

// Which output a thread owns: block (bz, by, bx) of the whole grid, thread (ty, tx).
struct Thread {
  int64_t bi, i, j;
  int ty, tx;
};

REPOPS_DEV Thread thread_at(int64_t bz, int64_t by, int64_t bx, int ty, int tx) {
  return Thread{bz, by * TILE + ty, bx * TILE + tx, ty, tx};
}

REPOPS_DEV Acc acc_init(const Geo& g) { return Acc{0.0f, 0.0f, g.kc < g.k ? g.kc : g.k}; }

// Phase 1 of tile k0: this thread's element of each shared tile (zero outside the matrix;
// those zeros are never consumed, because consume_tile stops at k).
REPOPS_DEV void load_tile(const Geo& g, const Thread& t, int64_t k0, Tiles& s) {
  const int64_t ka = k0 + t.tx;
  const int64_t kb = k0 + t.ty;
  const float* A = g.a + t.bi * g.sab;
  const float* B = g.b + t.bi * g.sbb;
  s.as[t.ty][t.tx] = (t.i < g.m && ka < g.k) ? A[t.i * g.sam + ka * g.sak] : 0.0f;
  s.bs[t.ty][t.tx] = (t.j < g.n && kb < g.k) ? B[kb * g.sbk + t.j * g.sbn] : 0.0f;
}

// Phase 2 of tile k0: the fmaf chain over the tile's k values in increasing order; at the
// end of each KC chunk (or of k) the partial joins C (C = P_0 for the first chunk) and the
// chain restarts from +0.  Threads outside the matrix compute on zeros and store nothing.
REPOPS_DEV void consume_tile(const Geo& g, const Thread& t, int64_t k0, const Tiles& s,
                             Acc& r) {
  const int64_t lim = g.k - k0 < TILE ? g.k - k0 : TILE;
  for (int u = 0; u < lim; u++) {
    r.acc = REPOPS_FMA(s.as[t.ty][u], s.bs[u][t.tx], r.acc);
    const int64_t done = k0 + u + 1;  // k values consumed so far
    if (done == r.end) {
      r.out = (done <= g.kc) ? r.acc : REPOPS_ADD(r.out, r.acc);
      r.acc = 0.0f;
      r.end = r.end + g.kc < g.k ? r.end + g.kc : g.k;
    }
  }
}

// Phase 3: the thread's output (C = +0 when k = 0: no tile ran).
REPOPS_DEV void store(const Geo& g, const Thread& t, const Acc& r) {
  if (t.i < g.m && t.j < g.n) g.c[(t.bi * g.m + t.i) * g.n + t.j] = r.out;
}

// Host side: the launches that cover the whole (nb, ceil(m/TILE), ceil(n/TILE)) grid with
// grid y and z at most max_yz each (a device limit; the emulator lowers it to test the
// offsets).  launch(z0, nz, y0, ny, nx): blocks z0..z0+nz-1, y0..y0+ny-1, 0..nx-1.
template <class Launch>
inline void for_each_launch(const Geo& g, int64_t max_yz, Launch launch) {
  const int64_t ny_all = (g.m + TILE - 1) / TILE;
  const int64_t nx = (g.n + TILE - 1) / TILE;
  for (int64_t z0 = 0; z0 < g.nb; z0 += max_yz) {
    const int64_t nz = g.nb - z0 < max_yz ? g.nb - z0 : max_yz;
    for (int64_t y0 = 0; y0 < ny_all; y0 += max_yz) {
      const int64_t ny = ny_all - y0 < max_yz ? ny_all - y0 : max_yz;
      launch(z0, nz, y0, ny, nx);
    }
  }
}

// Host side: the checks both the extension and the emulator make (0 = fine).
inline int check_geo(const Geo& g) {
  if (g.nb < 0 || g.m < 0 || g.k < 0 || g.n < 0) return 1;
  if (g.kc <= 0) return 2;  // any KC: a chunk may end inside a tile
  // x is the column tile: at most 2^31 - 1 blocks.
  if ((g.n + TILE - 1) / TILE > 2147483647) return 3;
  return 0;
}

}  // namespace repops_cuda

#endif  // REPOPS_CUDA_CORE_H_
