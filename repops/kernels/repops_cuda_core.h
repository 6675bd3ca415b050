// The arithmetic of the repops-2 CUDA matmul, one header for two compilers.
//
// With nvcc (__CUDACC__) the phase functions are __device__ code that the two __global__
// kernels in repops_cuda.cu call, with __syncthreads() between phases.  With g++ they are
// plain host C++ (`__fmaf_rn` -> std::fmaf, `__fadd_rn` -> `+` under -ffp-contract=off)
// that tests/support/cuda_host_emu.cpp runs block by block, thread by thread, in the order
// the barriers allow, so the host emulation executes the same source lines as the device.
//
// Semantics (repops/matmul.py): for output element (bi, i, j), for each chunk of KC
// consecutive k, increasing, an fmaf chain from +0; C = P_0, then C = C + P_c left to
// right.  Two kernels compute it, with the same operations on each element:
//   - the simple one (namespace repops_cuda): one thread per output, 16 x 16 threads,
//     16 x 16 shared tiles of A and B;
//   - the register-tiled one (namespace repops_cuda::rt): a 128 x 64 block of C per 256
//     threads, 8 x 4 outputs per thread (two registers each: the chain in progress and C
//     so far), k-tiles of 16 in shared memory, A stored k-major so a thread reads its 8
//     rows as two float4s.
// In both, a chunk may span k-tiles (its partial lives in a register across them) and the
// chunk end is a register compared with the k count, so neither the tile sizes nor the
// thread-to-output map can change a bit, and there is no integer division.  choose_kernel
// (host side) is the wrapper's rule; the emulator uses the same one.

#ifndef REPOPS_CUDA_CORE_H_
#define REPOPS_CUDA_CORE_H_

#include <cstdint>

#if defined(__CUDACC__)
#define REPOPS_DEV __device__ __forceinline__
#define REPOPS_FMA(x, y, z) __fmaf_rn((x), (y), (z))
#define REPOPS_ADD(x, y) __fadd_rn((x), (y))
#define REPOPS_UNROLL _Pragma("unroll")
#define REPOPS_ALIGN16 __align__(16)
#else
#include <cmath>
#define REPOPS_DEV inline
#define REPOPS_FMA(x, y, z) std::fmaf((x), (y), (z))
#define REPOPS_ADD(x, y) ((x) + (y))  // one IEEE add: the host build has -ffp-contract=off
#define REPOPS_UNROLL
#define REPOPS_ALIGN16 alignas(16)
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

// Host side: the launches that cover the whole (nb, ceil(m/bm), ceil(n/bn)) grid of blocks
// of bm x bn outputs, with grid y and z at most max_yz each (a device limit; the emulator
// lowers it to test the offsets).  launch(z0, nz, y0, ny, nx): blocks z0..z0+nz-1,
// y0..y0+ny-1, 0..nx-1.
template <class Launch>
inline void for_each_launch(const Geo& g, int64_t max_yz, int64_t bm, int64_t bn,
                            Launch launch) {
  const int64_t ny_all = (g.m + bm - 1) / bm;
  const int64_t nx = (g.n + bn - 1) / bn;
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

// ---- the register-tiled kernel ---------------------------------------------------------

namespace rt {

constexpr int BM = 128;  // rows of C per block
constexpr int BN = 64;   // columns of C per block
constexpr int BK = 16;   // k values per shared tile
constexpr int TM = 8;    // rows per thread (contiguous)
constexpr int TN = 4;    // columns per thread (contiguous)
constexpr int TX = BN / TN;       // 16 threads across a block's columns
constexpr int THREADS = (BM / TM) * TX;  // 256
constexpr int A_LOADS = BM * BK / THREADS;  // 8 A elements per thread and tile
constexpr int B_LOADS = BK * BN / THREADS;  // 4 B elements per thread and tile
// Shifts and masks for the load maps (powers of two: no integer division).
constexpr int LOG_BM = 7, LOG_BN = 6, LOG_BK = 4, LOG_TX = 4;
static_assert((1 << LOG_BM) == BM && (1 << LOG_BN) == BN && (1 << LOG_BK) == BK, "logs");
static_assert((1 << LOG_TX) == TX, "logs");
static_assert(A_LOADS * THREADS == BM * BK && B_LOADS * THREADS == BK * BN, "loads");
static_assert(TM % 4 == 0 && TN == 4, "float4 reads of a thread's rows and columns");

// A block's shared memory, both k-major: as[u][r] = A[row0 + r][k0 + u], bs[u][c] =
// B[k0 + u][col0 + c].  A thread reads as[u][ty*TM .. +TM) and bs[u][tx*TN .. +TN) as
// float4s (aligned: the rows are multiples of 16 bytes).  The +4 columns spread the
// transposing stores of A (and of a column-major B) over the banks.
struct REPOPS_ALIGN16 Tiles {
  float as[BK][BM + 4];
  float bs[BK][BN + 4];
};

// A thread's registers that live across tiles: per output the chain in progress and C so
// far, and the one chunk end all of them share (the chunks depend on k only).
struct Acc {
  float out[TM][TN];
  float acc[TM][TN];
  int64_t end;
};

// Block (bz, by, bx) of the whole grid, thread tid = ty * TX + tx of the block: outputs
// rows row0 + ty*TM + r, columns col0 + tx*TN + c (r < TM, c < TN).
struct Thread {
  int64_t bi, row0, col0;
  int tid, ty, tx;
};

REPOPS_DEV Thread thread_at(int64_t bz, int64_t by, int64_t bx, int tid) {
  return Thread{bz, by * BM, bx * BN, tid, tid >> LOG_TX, tid & (TX - 1)};
}

REPOPS_DEV Acc acc_init(const Geo& g) {
  Acc r;
  REPOPS_UNROLL for (int i = 0; i < TM; i++) {
    REPOPS_UNROLL for (int j = 0; j < TN; j++) {
      r.out[i][j] = 0.0f;
      r.acc[i][j] = 0.0f;
    }
  }
  r.end = g.kc < g.k ? g.kc : g.k;
  return r;
}

// One operand's share of a tile: its element q goes to dst[u0 + q du][x0 + q dx] from
// src[o + q d], or is +0 outside the matrix (x_left entries left along the tile's x axis,
// rows of A or columns of B, from x0; k_left along k from u0).  A tile wholly inside
// (x_left >= FULL, k_left >= BK) skips the checks.
template <int LOADS, int FULL, int W>
REPOPS_DEV void load_part(float (&dst)[BK][W], const float* src, int64_t o, int64_t d, int u0,
                          int x0, int du, int dx, int64_t x_left, int64_t k_left) {
  if (x_left >= FULL && k_left >= BK) {  // all inside (most tiles): no checks
    REPOPS_UNROLL for (int q = 0; q < LOADS; q++) {
      dst[u0 + q * du][x0 + q * dx] = src[o];
      o += d;
    }
  } else {
    REPOPS_UNROLL for (int q = 0; q < LOADS; q++) {
      dst[u0 + q * du][x0 + q * dx] = (q * dx < x_left && q * du < k_left) ? src[o] : 0.0f;
      o += d;
    }
  }
}

// Phase 1 of tile k0: this thread's A_LOADS elements of A and B_LOADS of B (zero outside
// the matrix; consume_tile never reads past k, and rows/columns past m/n are not stored).
// The element map follows the operand's unit stride so a warp's loads are coalesced:
// along k for a row-major A (two rows x 64 bytes per warp), along rows otherwise
// (column-major A: 128 bytes); along columns for a row-major B, along k otherwise.
//
// Element q of a thread is e = tid + q THREADS of the map: one k (or one row) and rows (or
// k values) a fixed step apart, so its offset is the first one plus q times a constant;
// with everything inlined the per-element cost is a bounds check, a load and a shared
// store (the address products are the same for every tile, hoisted out of the k loop).
REPOPS_DEV void load_tile(const Geo& g, const Thread& t, int64_t k0, Tiles& s) {
  {
    const bool along_k = g.sak == 1;
    const int u0 = along_k ? (t.tid & (BK - 1)) : (t.tid >> LOG_BM);
    const int r0 = along_k ? (t.tid >> LOG_BK) : (t.tid & (BM - 1));
    const int du = along_k ? 0 : THREADS / BM;  // per element: k step
    const int dr = along_k ? THREADS / BK : 0;  // per element: row step
    const int64_t o = (t.row0 + r0) * g.sam + (k0 + u0) * g.sak;
    load_part<A_LOADS, BM>(s.as, g.a + t.bi * g.sab, o, dr * g.sam + du * g.sak, u0, r0, du,
                           dr, g.m - t.row0 - r0, g.k - k0 - u0);
  }
  {
    const bool along_n = g.sbn == 1;
    const int u0 = along_n ? (t.tid >> LOG_BN) : (t.tid & (BK - 1));
    const int c0 = along_n ? (t.tid & (BN - 1)) : (t.tid >> LOG_BK);
    const int du = along_n ? THREADS / BN : 0;
    const int dc = along_n ? 0 : THREADS / BK;
    const int64_t o = (k0 + u0) * g.sbk + (t.col0 + c0) * g.sbn;
    load_part<B_LOADS, BN>(s.bs, g.b + t.bi * g.sbb, o, du * g.sbk + dc * g.sbn, u0, c0, du,
                           dc, g.n - t.col0 - c0, g.k - k0 - u0);
  }
}

// Four consecutive floats of a shared tile (one 128-bit shared load on the device).
REPOPS_DEV void read4(const float* p, float* out) {
#if defined(__CUDACC__)
  const float4 v = *reinterpret_cast<const float4*>(p);
  out[0] = v.x;
  out[1] = v.y;
  out[2] = v.z;
  out[3] = v.w;
#else
  for (int i = 0; i < 4; i++) out[i] = p[i];
#endif
}

// One k value (tile entry u) for all TM x TN outputs: one fmaf each.
REPOPS_DEV void step(const Tiles& s, const Thread& t, int u, Acc& r) {
  float a[TM], b[TN];
  REPOPS_UNROLL for (int i = 0; i < TM; i += 4) read4(&s.as[u][t.ty * TM + i], a + i);
  read4(&s.bs[u][t.tx * TN], b);
  REPOPS_UNROLL for (int i = 0; i < TM; i++) {
    REPOPS_UNROLL for (int j = 0; j < TN; j++) r.acc[i][j] = REPOPS_FMA(a[i], b[j], r.acc[i][j]);
  }
}

// The chunk ending after `done` k values: its partials join C (C = P_0 for the first
// chunk), the chains restart from +0, and the next chunk end is set.
REPOPS_DEV void finish_chunk(const Geo& g, int64_t done, Acc& r) {
  const bool first = done <= g.kc;
  REPOPS_UNROLL for (int i = 0; i < TM; i++) {
    REPOPS_UNROLL for (int j = 0; j < TN; j++) {
      r.out[i][j] = first ? r.acc[i][j] : REPOPS_ADD(r.out[i][j], r.acc[i][j]);
      r.acc[i][j] = 0.0f;
    }
  }
  r.end = r.end + g.kc < g.k ? r.end + g.kc : g.k;
}

// Phase 2 of tile k0: the tile's k values in increasing order.  When the tile is full and
// no chunk ends before its last entry (always, for KC a multiple of BK, but the last
// tile), the 16 steps are unrolled and a chunk end can only follow the last; otherwise
// the chunk end is checked after every step.  Either way each output sees the same
// operations in the same order: the fmaf of k, and after the k that ends a chunk, the add.
REPOPS_DEV void consume_tile(const Geo& g, const Thread& t, int64_t k0, const Tiles& s,
                             Acc& r) {
  const int64_t rest = g.k - k0;
  if (rest >= BK && r.end - k0 >= BK) {
    REPOPS_UNROLL for (int u = 0; u < BK; u++) step(s, t, u, r);
    if (k0 + BK == r.end) finish_chunk(g, k0 + BK, r);
  } else {
    const int lim = rest < BK ? static_cast<int>(rest) : BK;
    for (int u = 0; u < lim; u++) {
      step(s, t, u, r);
      if (k0 + u + 1 == r.end) finish_chunk(g, k0 + u + 1, r);
    }
  }
}

// Phase 3: the thread's outputs inside the matrix (C = +0 when k = 0: no tile ran).
REPOPS_DEV void store(const Geo& g, const Thread& t, const Acc& r) {
  float* C = g.c + t.bi * g.m * g.n;
  REPOPS_UNROLL for (int i = 0; i < TM; i++) {
    const int64_t row = t.row0 + t.ty * TM + i;
    REPOPS_UNROLL for (int j = 0; j < TN; j++) {
      const int64_t col = t.col0 + t.tx * TN + j;
      if (row < g.m && col < g.n) C[row * g.n + col] = r.out[i][j];
    }
  }
}

}  // namespace rt

// ---- which kernel (host side: the extension's rule, and the emulator's) ----------------

enum class Kernel { simple = 0, tiled = 1 };

// The register-tiled kernel when its padding wastes at most twice the simple kernel's
// (so small m or n stay on 16 x 16 blocks) and its grid has at least 256 blocks (two
// waves' worth of an H100/H200's 132 SMs at 2 blocks each, roughly; fewer blocks would
// leave SMs idle that the simple kernel's 8x more blocks fill).  Bits never depend on it.
inline Kernel choose_kernel(const Geo& g) {
  const int64_t tm = (g.m + rt::BM - 1) / rt::BM, tn = (g.n + rt::BN - 1) / rt::BN;
  const int64_t sm = (g.m + TILE - 1) / TILE, sn = (g.n + TILE - 1) / TILE;
  const double padded_tiled = static_cast<double>(tm * rt::BM) * static_cast<double>(tn * rt::BN);
  const double padded_simple = static_cast<double>(sm * TILE) * static_cast<double>(sn * TILE);
  const double blocks = static_cast<double>(g.nb) * static_cast<double>(tm * tn);
  return (padded_tiled <= 2.0 * padded_simple && blocks >= 256.0) ? Kernel::tiled
                                                                   : Kernel::simple;
}

// The kernel for a request code (-1: choose_kernel's pick, 0: simple, 1: tiled; callers
// check the range), and the rows and columns of C one of its blocks covers.
inline Kernel kernel_for(const Geo& g, int64_t code) {
  return code < 0 ? choose_kernel(g) : (code == 1 ? Kernel::tiled : Kernel::simple);
}
inline int64_t block_rows(Kernel kern) { return kern == Kernel::tiled ? rt::BM : TILE; }
inline int64_t block_cols(Kernel kern) { return kern == Kernel::tiled ? rt::BN : TILE; }

}  // namespace repops_cuda

#endif  // REPOPS_CUDA_CORE_H_
