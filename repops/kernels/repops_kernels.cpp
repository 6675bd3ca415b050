// repops native kernels (C ABI, loaded with ctypes by repops/kernels/__init__.py).
//
// Semantics (repops-2, see repops/ops.py and docs/repops.md):
//   matmul: C[i][j] = P_0 + P_1 + ... (left to right), P_c = fmaf chain from +0 over the
//   c-th chunk of KC consecutive k, increasing k.  Every path (AVX-512, AVX2, scalar)
//   performs exactly these IEEE binary32 operations per output element; blocking, packing
//   and the OpenMP split over output tiles only change which thread computes an element,
//   never how.  The kernels clear FTZ/DAZ and force round-to-nearest in MXCSR on every
//   thread they run on, and restore the caller's MXCSR afterwards.
//   exp/log/tanh: the fixed float64 sequences of repops/numerics.py, one IEEE op per step
//   (compiled with -ffp-contract=off, never -ffast-math), rounded once to binary32.
//
// Never: -ffast-math, FMA contraction of separate operations, split-k, library GEMMs.

#include <immintrin.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <cstring>

namespace {

// MXCSR: FTZ (bit 15), DAZ (bit 6), rounding control (bits 13-14), exception masks 7-12.
constexpr unsigned kFtzDazRc = 0x8000u | 0x0040u | 0x6000u;
constexpr unsigned kMasks = 0x1F80u;

struct FpGuard {
  unsigned old;
  FpGuard() : old(_mm_getcsr()) { _mm_setcsr((old & ~kFtzDazRc) | kMasks); }
  ~FpGuard() { _mm_setcsr(old); }
};

// Runs f, which holds an orphaned `omp for`, on an OpenMP team of nthreads when par, else on
// the calling thread alone (no team start: it costs microseconds, and small tapes make many
// small calls).  Which thread computes an element never changes how.
template <class F>
inline void team(bool par, int nthreads, F&& f) {
  if (par && nthreads > 1) {
#pragma omp parallel num_threads(nthreads)
    f();
  } else {
    f();
  }
}

// A per-thread scratch buffer that grows and is reused across calls (no allocation, and no
// fresh pages, per small matmul).  Contents are always written before they are read.
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      const size_t bytes = ((want * sizeof(float) + 63) / 64) * 64 + 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      n = want;
    }
    return p;
  }
};
thread_local Scratch tl_pa, tl_pb;

struct Geo {
  const float* a;
  const float* b;
  float* c;
  int64_t nb, m, k, n;
  int64_t sab, sam, sak;  // element strides of A (batch, row, k)
  int64_t sbb, sbk, sbn;  // element strides of B (batch, k, column)
  int64_t kc;
  int64_t mc, nc;  // blocking (multiples of MR / NR): bits never depend on them
  int64_t kbc;     // k block packed at once, in chunks of kc: bits never depend on it
};

// ---------------------------------------------------------------------------------------
// Micro kernels: an MR x NR tile over kl consecutive k.  pa: kl x MR (k-major), pb: kl x NR.
// acc starts at +0; then c = acc (first chunk) or c = c + acc.
// ---------------------------------------------------------------------------------------

// A element (r, p) of the micro tile: packed pa[p * MR + r] (AM = 0), or read in place from
// a row-major A, pa[r * lda + p] (AM = 1), or from a column-major A, pa[p * lda + r] (AM = 2).
template <int AM, int MR>
inline const float* a_at(const float* pa, int64_t lda, int64_t p, int r) {
  if (AM == 0) return pa + p * MR + r;
  if (AM == 1) return pa + r * lda + p;
  return pa + p * lda + r;
}

template <int MR, int NR, int AM>
void micro_scalar(int64_t kl, const float* pa, int64_t lda, const float* pb, float* c,
                  int64_t ldc, bool first) {
  float acc[MR][NR];
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < NR; j++) acc[r][j] = 0.0f;
  for (int64_t p = 0; p < kl; p++)
    for (int r = 0; r < MR; r++)
      for (int j = 0; j < NR; j++) acc[r][j] = std::fmaf(*a_at<AM, MR>(pa, lda, p, r), pb[p * NR + j], acc[r][j]);
  for (int r = 0; r < MR; r++)
    for (int j = 0; j < NR; j++) c[r * ldc + j] = first ? acc[r][j] : c[r * ldc + j] + acc[r][j];
}

#pragma GCC push_options
#pragma GCC target("avx2,fma")
template <int MR, int AM>
void micro_avx2(int64_t kl, const float* pa, int64_t lda, const float* pb, float* c,
                int64_t ldc, bool first) {
  __m256 acc0[MR], acc1[MR];
  for (int r = 0; r < MR; r++) {
    acc0[r] = _mm256_setzero_ps();
    acc1[r] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < kl; p++) {
    const __m256 b0 = _mm256_loadu_ps(pb + p * 16);
    const __m256 b1 = _mm256_loadu_ps(pb + p * 16 + 8);
    for (int r = 0; r < MR; r++) {
      const __m256 av = _mm256_broadcast_ss(a_at<AM, MR>(pa, lda, p, r));
      acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
    }
  }
  for (int r = 0; r < MR; r++) {
    float* row = c + r * ldc;
    if (first) {
      _mm256_storeu_ps(row, acc0[r]);
      _mm256_storeu_ps(row + 8, acc1[r]);
    } else {
      _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), acc0[r]));
      _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), acc1[r]));
    }
  }
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
template <int MR, int NV, int AM>
void micro_avx512(int64_t kl, const float* pa, int64_t lda, const float* pb, float* c,
                  int64_t ldc, bool first) {
  constexpr int NR = 16 * NV;
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kl; p++) {
    __m512 bv[NV];
    for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(pb + p * NR + 16 * v);
    for (int r = 0; r < MR; r++) {
      const __m512 av = _mm512_set1_ps(*a_at<AM, MR>(pa, lda, p, r));
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; r++) {
    float* row = c + r * ldc;
    for (int v = 0; v < NV; v++) {
      if (first)
        _mm512_storeu_ps(row + 16 * v, acc[r][v]);
      else
        _mm512_storeu_ps(row + 16 * v, _mm512_add_ps(_mm512_loadu_ps(row + 16 * v), acc[r][v]));
    }
  }
}
#pragma GCC pop_options

using Micro = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, bool);

// The three A layouts of one micro kernel: packed, row-major in place, column-major in place.
struct Micros {
  Micro packed, rows, cols;
};

// ---------------------------------------------------------------------------------------
// Driver: output tiles (batch, MC rows, NC columns) are split over OpenMP threads; each
// tile walks k blocks of kbc chunks in increasing order, packs A and B over the block (zero
// padding), and per MR x NR sub-tile runs the micro kernel once per chunk, in increasing
// chunk order, so the sub-tile of C stays in L1 while its chunk partials are added (one
// pass of C per chunk over the whole matrix cost ~15% at n = 1024).
// ---------------------------------------------------------------------------------------

template <int MR, int NR>
void gemm(const Geo& g, const Micros& mk, int nthreads) {
  const int64_t mc = g.mc > 0 ? ((g.mc + MR - 1) / MR) * MR : MR * 12;
  const int64_t nc = ((g.nc > 0 ? g.nc : 1024) + NR - 1) / NR * NR;
  const int64_t nt = (g.n + nc - 1) / nc;
  // Row super-blocks: all rows in one tile (B packed once per chunk) unless the batch and
  // column blocks alone would leave threads idle.
  int64_t ms = g.m;
  if (g.nb * nt < 2 * nthreads && nthreads > 1) {
    const int64_t want = (2 * nthreads + g.nb * nt - 1) / (g.nb * nt);
    ms = std::max<int64_t>(MR, (((g.m + want - 1) / want + MR - 1) / MR) * MR);
  }
  const int64_t mt = (g.m + ms - 1) / ms;
  const int64_t tiles = g.nb * mt * nt;
  const int64_t kc = g.kc;
  const int64_t kb = kc * (g.kbc > 0 ? g.kbc : 8);
  // Full MR-row panels of a column-major (unit row stride) A, or of a row-major (unit k
  // stride) A when n is small, are read in place by the micro kernel when the leading
  // dimension is short (packing costs about as much as the FMAs when few column panels
  // reuse it; long leading dimensions give L1 set conflicts between the rows read in place).
  // Other layouts and partial panels are packed.  Measured choices ("small n": at most four
  // panels of the tile, and 128 columns for the 6x64 one): bits never depend on them.
  constexpr int64_t kDirectLd = 256;
  const int amode = (g.sam == 1 && g.sak != 1) ? (g.sak <= kDirectLd ? 2 : 0)
                                               : (g.sak == 1 && g.sam <= kDirectLd &&
                                                  g.n <= 4 * std::min(NR, 32) ? 1 : 0);
  // Scratch sizes: only as much as this call's panels use.
  const int64_t kcap = std::min(kb, g.k);
  const int64_t mcap = std::min(mc, ((std::min(ms, g.m) + MR - 1) / MR) * MR);
  const int64_t ncap = std::min(nc, ((g.n + NR - 1) / NR) * NR);
  team(tiles > 1, nthreads, [&]() {
    FpGuard guard;
    float* pa = tl_pa.get(static_cast<size_t>(mcap * kcap));
    float* pb = tl_pb.get(static_cast<size_t>(ncap * kcap));
    alignas(64) float tmp[MR * NR];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t bi = t / (mt * nt);
      const int64_t s0 = ((t / nt) % mt) * ms, j0 = (t % nt) * nc;
      const int64_t sv = std::min(ms, g.m - s0), nv = std::min(nc, g.n - j0);
      const int64_t np = (nv + NR - 1) / NR;
      const float* A = g.a + bi * g.sab;
      const float* B = g.b + bi * g.sbb;
      float* C = g.c + bi * g.m * g.n;
      for (int64_t k0 = 0; k0 < g.k; k0 += kb) {
        const int64_t kl = std::min(kb, g.k - k0);
        for (int64_t q = 0; q < np; q++) {
          float* dst = pb + q * kl * NR;
          const int64_t jv = std::min<int64_t>(NR, nv - q * NR);
          if (g.sbn == 1 || g.sbk != 1) {
            for (int64_t p = 0; p < kl; p++) {
              const float* src = B + (k0 + p) * g.sbk + (j0 + q * NR) * g.sbn;
              float* d = dst + p * NR;
              if (g.sbn == 1) {
                std::memcpy(d, src, sizeof(float) * jv);
              } else {
                for (int64_t jj = 0; jj < jv; jj++) d[jj] = src[jj * g.sbn];
              }
              for (int64_t jj = jv; jj < NR; jj++) d[jj] = 0.0f;
            }
          } else {  // column-major B (a transposed view): read along k
            for (int64_t jj = 0; jj < NR; jj++) {
              if (jj < jv) {
                const float* src = B + k0 + (j0 + q * NR + jj) * g.sbn;
                for (int64_t p = 0; p < kl; p++) dst[p * NR + jj] = src[p];
              } else {
                for (int64_t p = 0; p < kl; p++) dst[p * NR + jj] = 0.0f;
              }
            }
          }
        }
        for (int64_t i0 = s0; i0 < s0 + sv; i0 += mc) {
          const int64_t mv = std::min(mc, s0 + sv - i0);
          const int64_t mp = (mv + MR - 1) / MR;
          for (int64_t s = 0; s < mp; s++) {
            const int64_t rv = std::min<int64_t>(MR, mv - s * MR);
            if (rv == MR && amode != 0) continue;  // full panel: read A in place
            float* dst = pa + s * kl * MR;
            if (g.sam == 1 && g.sak != 1) {  // column-major A (a transposed view): read along i
              for (int64_t p = 0; p < kl; p++) {
                const float* src = A + (i0 + s * MR) + (k0 + p) * g.sak;
                float* d = dst + p * MR;
                for (int64_t r = 0; r < rv; r++) d[r] = src[r];
                for (int64_t r = rv; r < MR; r++) d[r] = 0.0f;
              }
            } else {
              for (int64_t r = 0; r < MR; r++) {
                if (r < rv) {
                  const float* src = A + (i0 + s * MR + r) * g.sam + k0 * g.sak;
                  for (int64_t p = 0; p < kl; p++) dst[p * MR + r] = src[p * g.sak];
                } else {
                  for (int64_t p = 0; p < kl; p++) dst[p * MR + r] = 0.0f;
                }
              }
            }
          }
          const int64_t lda = amode == 1 ? g.sam : g.sak;
          for (int64_t q = 0; q < np; q++) {
            const int64_t cols = std::min<int64_t>(NR, nv - q * NR);
            for (int64_t c0 = 0; c0 < kl; c0 += kc) {  // the chunks of this block, in order
              const int64_t kq = std::min(kc, kl - c0);
              const bool first = k0 + c0 == 0;
              const float* bp = pb + q * kl * NR + c0 * NR;
              for (int64_t s = 0; s < mp; s++) {
                const int64_t rows = std::min<int64_t>(MR, mv - s * MR);
                const bool direct = rows == MR && amode != 0;
                const Micro micro = direct ? (amode == 1 ? mk.rows : mk.cols) : mk.packed;
                const float* ap = direct ? A + (i0 + s * MR) * g.sam + (k0 + c0) * g.sak
                                         : pa + s * kl * MR + c0 * MR;
                float* out = C + (i0 + s * MR) * g.n + j0 + q * NR;
                if (rows == MR && cols == NR) {
                  micro(kq, ap, lda, bp, out, g.n, first);
                } else {
                  if (!first)
                    for (int64_t r = 0; r < rows; r++)
                      for (int64_t j = 0; j < cols; j++) tmp[r * NR + j] = out[r * g.n + j];
                  micro(kq, ap, lda, bp, tmp, NR, first);
                  for (int64_t r = 0; r < rows; r++)
                    for (int64_t j = 0; j < cols; j++) out[r * g.n + j] = tmp[r * NR + j];
                }
              }
            }
          }
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// float64 transcendental sequences (bit-identical to repops/numerics.py).
// ---------------------------------------------------------------------------------------

constexpr double LN2_HI = 0.693147180369123816490;
constexpr double LN2_LO = 1.90821492927058770002e-10;
constexpr double INV_LN2 = 1.44269504088896338700;
constexpr double SQRT_HALF = 0.70710678118654752440;
constexpr double RNE_MAGIC = 6755399441055744.0;  // 1.5 * 2**52: (t + M) - M = rne(t), |t| < 2**51

inline double bits_f64(uint64_t u) {
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}
inline uint64_t f64_bits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}

// The Taylor coefficients 1/i! (i = 12..1) and 2/(2i+1) (i = 8..0) as Python computes them
// (1.0 / math.factorial(i), 2.0 / (2 i + 1): one correctly rounded division each).
struct Coeffs {
  double e[12];
  double l[9];
  Coeffs() {
    for (int i = 12; i >= 1; i--) {
      double f = 1.0;
      for (int j = 2; j <= i; j++) f *= j;  // exact: 12! < 2**53
      e[12 - i] = 1.0 / f;
    }
    for (int i = 8; i >= 0; i--) l[8 - i] = 2.0 / (2 * i + 1);
  }
};
const Coeffs kC;

inline void exp_core(double x, double& k, double& q) {
  k = (x * INV_LN2 + RNE_MAGIC) - RNE_MAGIC;
  double r = x - k * LN2_HI;
  r = r - k * LN2_LO;
  q = r * kC.e[0];
  for (int i = 1; i < 12; i++) {
    q = q + kC.e[i];
    q = q * r;
  }
}

inline double pow2_of(double k) {
  // 2**k by bit construction for an integer-valued k in [-1022, 1023]; NaN k -> 1 (k = 0,
  // torch.nan_to_num).  k + 2**52 + 1023 holds k + 1023 in its low mantissa bits.
  const double kk = (k == k) ? k : 0.0;
  const uint64_t u = f64_bits(kk + (4503599627370496.0 + 1023.0));
  return bits_f64(u << 52);
}

inline float exp1(float xf) {
  double x = xf;
  x = x < -110.0 ? -110.0 : x;  // NaN passes both selects, as torch.clamp
  x = x > 90.0 ? 90.0 : x;
  double k, q;
  exp_core(x, k, q);
  return static_cast<float>((q + 1.0) * pow2_of(k));
}

inline float log1(float xf) {
  const double x = xf;
  const bool ok = (x > 0.0) & (x < INFINITY);
  const double xs = ok ? x : 1.0;  // every binary32 is a normal float64
  const uint64_t u = f64_bits(xs);
  const double e = static_cast<double>(static_cast<int32_t>((u >> 52) & 0x7FF) - 1022);
  double m = bits_f64((u & 0x000FFFFFFFFFFFFFull) | (1022ull << 52));  // frexp: [0.5, 1)
  const bool fold = m < SQRT_HALF;
  m = fold ? m * 2.0 : m;
  const double ef = e - (fold ? 1.0 : 0.0);
  const double s = (m - 1.0) / (m + 1.0);
  const double z = s * s;
  double p = z * kC.l[0];
  for (int i = 1; i < 8; i++) {
    p = p + kC.l[i];
    p = p * z;
  }
  p = p + kC.l[8];
  const double lm = s * p;
  const double y = ef * LN2_HI + (ef * LN2_LO + lm);
  double special = NAN;
  special = x == 0.0 ? -INFINITY : special;
  special = x == INFINITY ? INFINITY : special;
  return static_cast<float>(ok ? y : special);
}

inline float tanh1(float xf) {
  const double x = xf;
  double a = std::fabs(x);
  a = a > 20.0 ? 20.0 : a;
  double k, q;
  exp_core(a * 2.0, k, q);
  const double big = (q + 1.0) * pow2_of(k);
  const double em1 = (k == 0.0) ? q : big - 1.0;
  const double t = em1 / (em1 + 2.0);
  return static_cast<float>(std::copysign(t, x));
}

// IEEE-754 correctly rounded square root (sqrtss / vsqrtps).  torch's vectorised CPU
// sqrt is not correctly rounded (about 1 in 6 results off by one ulp in torch 2.13).
inline float sqrt1(float x) { return std::sqrt(x); }

// tanh-GELU pieces (binary32 ops, tanh by tanh1): see repops/numerics.py gelu / gelu_grad.
// Each the binary32 rounding of the binary64 value, as Python's float -> float32 does.
constexpr float GELU_C1 = static_cast<float>(0.044715);
constexpr float GELU_C2 = static_cast<float>(0.7978845608028654);  // sqrt(2/pi)
constexpr float GELU_C3 = static_cast<float>(0.134145);

inline float gelu1(float x) {
  const float x3 = (x * x) * x;
  const float inner = x + GELU_C1 * x3;
  const float t = tanh1(GELU_C2 * inner);
  return (0.5f * x) * (1.0f + t);
}

inline float gelu_grad1(float x, float g) {
  const float x2 = x * x;
  const float x3 = x2 * x;
  const float inner = x + GELU_C1 * x3;
  const float t = tanh1(GELU_C2 * inner);
  const float a = 0.5f * (1.0f + t);
  const float s = 1.0f - t * t;
  const float dinner = 1.0f + GELU_C3 * x2;
  const float b = ((0.5f * x) * s) * (GELU_C2 * dinner);
  return g * (a + b);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_grad_block(
    const float* __restrict__ x, const float* __restrict__ g, float* __restrict__ y,
    int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; i++) y[i] = gelu_grad1(x[i], g[i]);
}

// Issue-13 binary64 sequences (bit-identical to repops/numerics.py sigmoid, gelu_erf,
// gelu_erf_grad, sin, cos; every step one binary64 operation, rounded once at the end).
constexpr double INV_SQRT2 = 0.7071067811865476;
constexpr double TWO_OVER_SQRT_PI = 1.1283791670955126;
constexpr double INV_SQRT_PI = 0.5641895835477563;
constexpr double INV_SQRT_2PI = 0.3989422804014327;
constexpr double TWO_OVER_PI = 0.6366197723675814;
constexpr double PIO2_1 = 0x1.921fb544p+0;
constexpr double PIO2_2 = 0x1.0b4611a6p-34;
constexpr double PIO2_3 = 0x1.3198a2e037073p-69;

// (-1)**i / (2i+1)! (i = 8..1) and (-1)**i / (2i)! (i = 9..1), as Python computes them.
struct TrigCoeffs {
  double s[8];
  double c[9];
  TrigCoeffs() {
    auto fact = [](int n) {
      double f = 1.0;
      for (int j = 2; j <= n; j++) f *= j;  // exact: 18! < 2**53
      return f;
    };
    for (int i = 8; i >= 1; i--) s[8 - i] = ((i % 2) ? -1.0 : 1.0) / fact(2 * i + 1);
    for (int i = 9; i >= 1; i--) c[9 - i] = ((i % 2) ? -1.0 : 1.0) / fact(2 * i);
  }
};
const TrigCoeffs kT;

inline double exp64(double y) {
  double k, q;
  exp_core(y, k, q);
  return (q + 1.0) * pow2_of(k);
}

inline float sigmoid1(float xf) {
  const double x = xf;
  double a = std::fabs(x);
  a = a > 110.0 ? 110.0 : a;
  const double e = exp64(-a);
  const double d = e + 1.0;
  return static_cast<float>(x < 0.0 ? e / d : 1.0 / d);
}

// erf GELU over blocks of L lanes: every step is a loop over the lanes, so the compiler
// vectorises across elements while each element sees exactly the binary64 sequence of
// numerics._phi_and_density (the continued fraction runs only when a lane needs it).
struct ErfRecip {
  double r[40];
  ErfRecip() {
    for (int n = 0; n < 40; n++) r[n] = 1.0 / static_cast<double>(2 * n + 3);
  }
};
const ErfRecip kR;
// 32 lanes: enough independent chains to hide the multiply latency of the 40-step series
// (measured 1.9x faster than 16 on 3k elements, 3.7x on 200k; 64 and 128 were slower).
constexpr int L = 32;

inline void phi_density_lanes(const float* xf, int m, double* phi, double* e, double* x) {
  double z[L], w[L], t[L], s[L], ser[L], f[L];
  bool any_cf = false;
  for (int j = 0; j < L; j++) {
    x[j] = j < m ? static_cast<double>(xf[j]) : 0.0;
    z[j] = std::fabs(x[j]) * INV_SQRT2;
    double y = -(z[j] * z[j]);
    y = y < -110.0 ? -110.0 : y;
    double k, q;
    exp_core(y, k, q);
    e[j] = (q + 1.0) * pow2_of(k);
    w[j] = (z[j] * 2.0) * z[j];
    t[j] = z[j];
    s[j] = z[j];
    any_cf |= j < m && !(z[j] < 2.0);
  }
  for (int n = 0; n < 40; n++) {
    const double r = kR.r[n];
    for (int j = 0; j < L; j++) {
      t[j] = (t[j] * w[j]) * r;
      s[j] = s[j] + t[j];
    }
  }
  for (int j = 0; j < L; j++) ser[j] = 1.0 - (e[j] * TWO_OVER_SQRT_PI) * s[j];
  if (any_cf) {
    for (int j = 0; j < L; j++) f[j] = z[j];
    for (int n = 60; n >= 1; n--) {
      const double a = n * 0.5;
      for (int j = 0; j < L; j++) f[j] = z[j] + a / f[j];
    }
    for (int j = 0; j < L; j++) f[j] = (e[j] * INV_SQRT_PI) / f[j];
  }
  for (int j = 0; j < L; j++) {
    const double erfc = z[j] < 2.0 ? ser[j] : f[j];
    phi[j] = x[j] < 0.0 ? erfc * 0.5 : 1.0 - erfc * 0.5;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_erf_block(
    const float* __restrict__ xs, float* __restrict__ y, int64_t lo, int64_t hi) {
  double phi[L], e[L], x[L];
  for (int64_t i = lo; i < hi; i += L) {
    const int m = static_cast<int>(std::min<int64_t>(L, hi - i));
    phi_density_lanes(xs + i, m, phi, e, x);
    for (int j = 0; j < m; j++)
      y[i + j] = static_cast<float>(x[j] == -INFINITY ? -0.0 : x[j] * phi[j]);
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_erf_grad_block(
    const float* __restrict__ xs, const float* __restrict__ g, float* __restrict__ y,
    int64_t lo, int64_t hi) {
  double phi[L], e[L], x[L];
  for (int64_t i = lo; i < hi; i += L) {
    const int m = static_cast<int>(std::min<int64_t>(L, hi - i));
    phi_density_lanes(xs + i, m, phi, e, x);
    for (int j = 0; j < m; j++) {
      double d = phi[j] + x[j] * (e[j] * INV_SQRT_2PI);
      d = std::isinf(x[j]) ? (x[j] > 0.0 ? 1.0 : 0.0) : d;
      y[i + j] = g[i + j] * static_cast<float>(d);
    }
  }
}

inline void sin_cos_abs(float xf, double& sa, double& ca) {
  const double a = std::fabs(static_cast<double>(xf));
  const double k = std::nearbyint(a * TWO_OVER_PI);  // round half to even (FpGuard's mode)
  const double r = ((a - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
  const double z = r * r;
  double ps = z * kT.s[0];
  for (int i = 1; i < 7; i++) ps = (ps + kT.s[i]) * z;
  ps = ps + kT.s[7];
  const double s = r + (r * z) * ps;
  double pc = z * kT.c[0];
  for (int i = 1; i < 8; i++) pc = (pc + kT.c[i]) * z;
  pc = pc + kT.c[8];
  const double c = 1.0 + z * pc;
  const double kk = (k == k && k != INFINITY) ? k : 0.0;
  const double q = std::fmod(kk, 4.0);
  sa = q == 0.0 ? s : (q == 1.0 ? c : (q == 2.0 ? -s : -c));
  ca = q == 0.0 ? c : (q == 1.0 ? -s : (q == 2.0 ? -c : s));
  if (!std::isfinite(a)) sa = ca = NAN;
}

inline float sin1(float x) {
  double s, c;
  sin_cos_abs(x, s, c);
  return static_cast<float>(std::signbit(x) ? -s : s);
}

inline float cos1(float x) {
  double s, c;
  sin_cos_abs(x, s, c);
  return static_cast<float>(c);
}


template <float (*F)(float)>
__attribute__((target_clones("avx512f", "avx2", "default"))) void unary_block(
    const float* __restrict__ x, float* __restrict__ y, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; i++) y[i] = F(x[i]);
}

template <float (*F)(float)>
void unary(const float* x, float* y, int64_t n, int nthreads) {
  const int64_t grain = 1 << 14;
  const int64_t blocks = (n + grain - 1) / grain;
  team(blocks > 1, nthreads, [&]() {
#pragma omp for schedule(static)
    for (int64_t bl = 0; bl < blocks; bl++) {
      FpGuard guard;
      const int64_t lo = bl * grain, hi = std::min(n, lo + grain);
      unary_block<F>(x, y, lo, hi);
    }
  });
}

template <void (*B)(const float*, float*, int64_t, int64_t)>
void blocked(const float* x, float* y, int64_t n, int nthreads) {
  const int64_t grain = 1 << 12;
  const int64_t blocks = (n + grain - 1) / grain;
  team(blocks > 1, nthreads, [&]() {
#pragma omp for schedule(static)
    for (int64_t bl = 0; bl < blocks; bl++) {
      FpGuard guard;
      const int64_t lo = bl * grain, hi = std::min(n, lo + grain);
      B(x, y, lo, hi);
    }
  });
}

// The fixed halving tree of repops/numerics.py over an axis of length len, for w columns:
// buf[i][t] = base[i si + t st], then y_i = y_i + y_{i+half} while i + half < n, in place.
__attribute__((target_clones("avx512f", "avx2", "default"))) void tree_block(
    const float* __restrict__ base, int64_t si, int64_t st, float* __restrict__ y,
    float* __restrict__ buf, int64_t len, int64_t w) {
  if (st == 1) {
    for (int64_t i = 0; i < len; i++)
      for (int64_t t = 0; t < w; t++) buf[i * w + t] = base[i * si + t];
  } else {
    for (int64_t t = 0; t < w; t++)
      for (int64_t i = 0; i < len; i++) buf[i * w + t] = base[i * si + t * st];
  }
  int64_t n = len;
  while (n > 1) {
    int64_t half = 1;
    while (half * 2 < n) half *= 2;  // P/2 for P the smallest power of two >= n
    const int64_t pairs = (n - half) * w;  // rows i < n - half pair with i + half
    float* lo = buf;
    const float* hi = buf + half * w;
    for (int64_t e = 0; e < pairs; e++) lo[e] = lo[e] + hi[e];
    n = half;
  }
  for (int64_t t = 0; t < w; t++) y[t] = buf[t];
}

// Rows variant: w consecutive rows of length len (row-major), each its own tree.
__attribute__((target_clones("avx512f", "avx2", "default"))) void tree_rows(
    const float* __restrict__ x, float* __restrict__ y, float* __restrict__ buf, int64_t len,
    int64_t w) {
  std::memcpy(buf, x, sizeof(float) * len * w);
  int64_t n = len;
  while (n > 1) {
    int64_t half = 1;
    while (half * 2 < n) half *= 2;
    for (int64_t t = 0; t < w; t++) {
      float* lo = buf + t * len;
      const float* hi = lo + half;
      for (int64_t e = 0; e < n - half; e++) lo[e] = lo[e] + hi[e];
    }
    n = half;
  }
  for (int64_t t = 0; t < w; t++) y[t] = buf[t * len];
}

bool cpu_has(int isa) {
  __builtin_cpu_init();
  if (isa == 2) return __builtin_cpu_supports("avx512f");
  if (isa == 1) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return isa == 0;
}

}  // namespace

#define API __attribute__((visibility("default")))

extern "C" {

// 1 if the ISA path (0 scalar, 1 avx2, 2 avx512) runs on this CPU.
API int repops_isa_supported(int isa) { return cpu_has(isa) ? 1 : 0; }

// C (nb, m, n) contiguous = A (nb, m, k) . B (nb, k, n), any element strides.  Returns 0, or
// -1 for an unsupported ISA, -2 for a bad argument.
API int repops_matmul(const float* a, const float* b, float* c, int64_t nb, int64_t m, int64_t k,
                  int64_t n, int64_t sab, int64_t sam, int64_t sak, int64_t sbb, int64_t sbk,
                  int64_t sbn, int64_t kc, int isa, int nthreads, int64_t mc, int64_t nc,
                  int64_t kbc) {
  if (!cpu_has(isa)) return -1;
  if (kc <= 0 || nthreads <= 0 || nb < 0 || m < 0 || n < 0 || k < 0 || kbc < 0) return -2;
  if (nb == 0 || m == 0 || n == 0) return 0;
  if (k == 0) {
    std::memset(c, 0, sizeof(float) * nb * m * n);
    return 0;
  }
  const Geo g{a, b, c, nb, m, k, n, sab, sam, sak, sbb, sbk, sbn, kc, mc, nc, kbc};
  const auto padded = [n](int64_t nr) { return (n + nr - 1) / nr * nr; };
  if (isa == 2 && n <= 16)
    // Narrow outputs (weight gradients and heads of small models): one vector per row, so
    // a 32-wide tile does not spend most of its FMAs on padding.
    gemm<8, 16>(g, {micro_avx512<8, 1, 0>, micro_avx512<8, 1, 1>, micro_avx512<8, 1, 2>},
                nthreads);
  else if (isa == 2 && padded(64) <= padded(32))
    // 6 x 64 (four vectors per row, 24 accumulators): 10 loads per 24 FMAs; measured ~6%
    // faster than 8 x 32 at n = 1024, where 64 columns pad no more than 32 do.
    gemm<6, 64>(g, {micro_avx512<6, 4, 0>, micro_avx512<6, 4, 1>, micro_avx512<6, 4, 2>},
                nthreads);
  else if (isa == 2)
    // 8 x 32 (two vectors per row): 10 loads per 16 FMAs; measured 3-30% faster than 14 x 16
    // on the GPT shapes (batched attention most).
    gemm<8, 32>(g, {micro_avx512<8, 2, 0>, micro_avx512<8, 2, 1>, micro_avx512<8, 2, 2>},
                nthreads);
  else if (isa == 1)
    gemm<6, 16>(g, {micro_avx2<6, 0>, micro_avx2<6, 1>, micro_avx2<6, 2>}, nthreads);
  else
    gemm<4, 4>(g, {micro_scalar<4, 4, 0>, micro_scalar<4, 4, 1>, micro_scalar<4, 4, 2>},
               nthreads);
  return 0;
}

// y = f(x) elementwise for contiguous float32 x, y; f: 0 exp, 1 log, 2 tanh, 3 sqrt,
// 4 gelu, 5 sigmoid, 6 gelu_erf, 7 sin, 8 cos.
API int repops_unary(int f, const float* x, float* y, int64_t n, int nthreads) {
  if (n < 0 || nthreads <= 0) return -2;
  if (f == 0)
    unary<exp1>(x, y, n, nthreads);
  else if (f == 1)
    unary<log1>(x, y, n, nthreads);
  else if (f == 2)
    unary<tanh1>(x, y, n, nthreads);
  else if (f == 3)
    unary<sqrt1>(x, y, n, nthreads);
  else if (f == 4)
    unary<gelu1>(x, y, n, nthreads);
  else if (f == 5)
    unary<sigmoid1>(x, y, n, nthreads);
  else if (f == 6)
    blocked<gelu_erf_block>(x, y, n, nthreads);
  else if (f == 7)
    unary<sin1>(x, y, n, nthreads);
  else if (f == 8)
    unary<cos1>(x, y, n, nthreads);
  else
    return -2;
  return 0;
}

// y (outer, inner) = tree sum of x (outer, len, inner) over len >= 1 (contiguous).
API int repops_tree_sum(const float* x, float* y, int64_t outer, int64_t len, int64_t inner,
                        int nthreads) {
  if (outer < 0 || len < 1 || inner < 0 || nthreads <= 0) return -2;
  // inner == 1 (a sum over the last axis): blocks of 64 rows of the outer index instead.
  const bool rows = inner == 1;
  const int64_t span = rows ? outer : inner;
  const int64_t cb = rows ? std::max<int64_t>(1, 8192 / len) : (inner < 256 ? (inner > 0 ? inner : 1) : 256);
  const int64_t nblk = (span + cb - 1) / cb;
  const int64_t tasks = rows ? nblk : outer * nblk;
  team(tasks > 1 && outer * len * inner > 32768, nthreads, [&]() {
    FpGuard guard;
    float* buf = static_cast<float*>(std::malloc(sizeof(float) * len * cb + 64));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
      if (rows) {
        const int64_t c0 = t * cb, c1 = std::min(outer, c0 + cb);
        tree_rows(x + c0 * len, y + c0, buf, len, c1 - c0);
      } else {
        const int64_t o = t / nblk, c0 = (t % nblk) * cb;
        const int64_t c1 = std::min(inner, c0 + cb);
        tree_block(x + o * len * inner + c0, inner, 1, y + o * inner + c0, buf, len, c1 - c0);
      }
    }
    std::free(buf);
  });
  return 0;
}

// y = gelu'(x) * g elementwise (contiguous, one shape).
API int repops_gelu_grad(const float* x, const float* g, float* y, int64_t n, int nthreads) {
  if (n < 0 || nthreads <= 0) return -2;
  const int64_t grain = 1 << 14;
  const int64_t blocks = (n + grain - 1) / grain;
  team(blocks > 1, nthreads, [&]() {
#pragma omp for schedule(static)
    for (int64_t bl = 0; bl < blocks; bl++) {
      FpGuard guard;
      gelu_grad_block(x, g, y, bl * grain, std::min(n, (bl + 1) * grain));
    }
  });
  return 0;
}

API int repops_gelu_erf_grad(const float* x, const float* g, float* y, int64_t n, int nthreads) {
  if (n < 0 || nthreads <= 0) return -2;
  const int64_t grain = 1 << 12;
  const int64_t blocks = (n + grain - 1) / grain;
  team(blocks > 1, nthreads, [&]() {
#pragma omp for schedule(static)
    for (int64_t bl = 0; bl < blocks; bl++) {
      FpGuard guard;
      gelu_erf_grad_block(x, g, y, bl * grain, std::min(n, (bl + 1) * grain));
    }
  });
  return 0;
}

// The halving tree over b[0..n) in place (n >= 1); returns the sum.
__attribute__((always_inline)) inline float tree_inplace(float* b, int64_t n) {
  while (n > 1) {
    int64_t half = 1;
    while (half * 2 < n) half *= 2;
    for (int64_t i = 0; i + half < n; i++) b[i] = b[i] + b[i + half];
    n = half;
  }
  return b[0];
}

// Softmax over rows of length len: mx = exact max (NaN if any NaN, +0 for a zero max),
// e_i = exp1(x_i - mx), s = tree sum of e, y_i = e_i / s.
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

extern "C++" {
CLONES void softmax_rows(const float* __restrict__ x, float* __restrict__ y,
                         float* __restrict__ buf, int64_t r0, int64_t r1, int64_t len) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * len;
    float* yr = y + r * len;
    float mx = -INFINITY;
    bool nan = false;
    for (int64_t i = 0; i < len; i++) {
      nan |= xr[i] != xr[i];
      mx = xr[i] > mx ? xr[i] : mx;
    }
    mx = nan ? NAN : (mx == 0.0f ? 0.0f : mx);
    for (int64_t i = 0; i < len; i++) yr[i] = exp1(xr[i] - mx);
    std::memcpy(buf, yr, sizeof(float) * len);
    const float sum = tree_inplace(buf, len);
    for (int64_t i = 0; i < len; i++) yr[i] = yr[i] / sum;
  }
}

// Rows [0, rows) in blocks of 16 per OpenMP task; every row is computed the same way.
template <class F>
void row_blocks(int64_t rows, int64_t len, int64_t scratch, int nthreads, F f) {
  const int64_t blocks = (rows + 15) / 16;
  team(rows * len > 32768, nthreads, [&]() {
    FpGuard guard;
    float* buf = static_cast<float*>(std::malloc(sizeof(float) * len * scratch + 64));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; b++) f(buf, b * 16, std::min(rows, b * 16 + 16));
    std::free(buf);
  });
}

}  // extern "C++"

API int repops_softmax(const float* x, float* y, int64_t rows, int64_t len, int nthreads) {
  if (rows < 0 || len < 1 || nthreads <= 0) return -2;
  row_blocks(rows, len, 1, nthreads,
             [&](float* buf, int64_t r0, int64_t r1) { softmax_rows(x, y, buf, r0, r1, len); });
  return 0;
}

// Softmax backward over rows: d = tree sum of g_i*y_i, out_i = y_i*(g_i - d).
extern "C++" {
CLONES void softmax_grad_rows(const float* __restrict__ y, const float* __restrict__ g,
                              float* __restrict__ out, float* __restrict__ buf, int64_t r0,
                              int64_t r1, int64_t len) {
  for (int64_t r = r0; r < r1; r++) {
    const float* yr = y + r * len;
    const float* gr = g + r * len;
    float* o = out + r * len;
    for (int64_t i = 0; i < len; i++) buf[i] = gr[i] * yr[i];
    const float d = tree_inplace(buf, len);
    for (int64_t i = 0; i < len; i++) o[i] = yr[i] * (gr[i] - d);
  }
}

}  // extern "C++"

API int repops_softmax_grad(const float* y, const float* g, float* out, int64_t rows,
                            int64_t len, int nthreads) {
  if (rows < 0 || len < 1 || nthreads <= 0) return -2;
  row_blocks(rows, len, 1, nthreads, [&](float* buf, int64_t r0, int64_t r1) {
    softmax_grad_rows(y, g, out, buf, r0, r1, len);
  });
  return 0;
}

// Layer-norm core over rows of length len (see repops/numerics.py layer_norm_core):
// mu = SUM(x)*inv_c; xc = x - mu; var = SUM(xc*xc)*inv_c; rstd = 1/sqrt(var + eps);
// xhat = xc*rstd.  Writes xhat to out (and rstd to *rstd_out when non-null).
__attribute__((always_inline)) inline void ln_row(const float* x, float* xhat, float* buf, int64_t len, float inv_c, float eps,
                   float* rstd_out) {
  std::memcpy(buf, x, sizeof(float) * len);
  const float mu = tree_inplace(buf, len) * inv_c;
  for (int64_t i = 0; i < len; i++) xhat[i] = x[i] - mu;
  for (int64_t i = 0; i < len; i++) buf[i] = xhat[i] * xhat[i];
  const float var = tree_inplace(buf, len) * inv_c;
  const float rstd = 1.0f / std::sqrt(var + eps);
  for (int64_t i = 0; i < len; i++) xhat[i] = xhat[i] * rstd;
  if (rstd_out) *rstd_out = rstd;
}

extern "C++" {
CLONES void ln_rows(const float* __restrict__ x, float* __restrict__ y,
                    float* __restrict__ buf, int64_t r0, int64_t r1, int64_t len, float inv_c,
                    float eps) {
  for (int64_t r = r0; r < r1; r++) ln_row(x + r * len, y + r * len, buf, len, inv_c, eps, nullptr);
}

}  // extern "C++"

API int repops_layer_norm(const float* x, float* y, int64_t rows, int64_t len, float inv_c,
                          float eps, int nthreads) {
  if (rows < 0 || len < 1 || nthreads <= 0) return -2;
  row_blocks(rows, len, 1, nthreads, [&](float* buf, int64_t r0, int64_t r1) {
    ln_rows(x, y, buf, r0, r1, len, inv_c, eps);
  });
  return 0;
}

// Backward of the core: xhat, rstd recomputed from x as above; a = SUM(g)*inv_c;
// b = SUM(g*xhat)*inv_c; dx = rstd*((g - a) - xhat*b).
extern "C++" {
CLONES void ln_grad_rows(const float* __restrict__ x, const float* __restrict__ g,
                         float* __restrict__ out, float* __restrict__ buf, int64_t r0,
                         int64_t r1, int64_t len, float inv_c, float eps) {
  float* xhat = buf + len;
  for (int64_t r = r0; r < r1; r++) {
    const float* gr = g + r * len;
    float* o = out + r * len;
    float rstd;
    ln_row(x + r * len, xhat, buf, len, inv_c, eps, &rstd);
    std::memcpy(buf, gr, sizeof(float) * len);
    const float a = tree_inplace(buf, len) * inv_c;
    for (int64_t i = 0; i < len; i++) buf[i] = gr[i] * xhat[i];
    const float b = tree_inplace(buf, len) * inv_c;
    for (int64_t i = 0; i < len; i++) o[i] = rstd * ((gr[i] - a) - xhat[i] * b);
  }
}

}  // extern "C++"

API int repops_layer_norm_grad(const float* x, const float* g, float* out, int64_t rows,
                               int64_t len, float inv_c, float eps, int nthreads) {
  if (rows < 0 || len < 1 || nthreads <= 0) return -2;
  row_blocks(rows, len, 2, nthreads, [&](float* buf, int64_t r0, int64_t r1) {
    ln_grad_rows(x, g, out, buf, r0, r1, len, inv_c, eps);
  });
  return 0;
}

// AdamW moments: out = b*m + c*g (square = 0) or b*m + c*(g*g) (square = 1), binary32,
// each product and the sum rounded separately (no contraction).
API int repops_adam_moment(int square, const float* m, const float* g, float* out, int64_t n,
                           float b, float c, int nthreads) {
  if (n < 0 || nthreads <= 0) return -2;
  team(n > 65536, nthreads, [&]() {
#pragma omp for schedule(static)
    for (int64_t lo = 0; lo < n; lo += 16384) {
      FpGuard guard;
      const int64_t hi = std::min(n, lo + 16384);
      if (square) {
        for (int64_t i = lo; i < hi; i++) {
          const float gg = g[i] * g[i];
          const float bm = b * m[i];
          out[i] = bm + c * gg;
        }
      } else {
        for (int64_t i = lo; i < hi; i++) {
          const float bm = b * m[i];
          out[i] = bm + c * g[i];
        }
      }
    }
  });
  return 0;
}

// AdamW parameter update: u = (m/bc1) / (sqrt(v/bc2) + eps) [+ wd*p]; out = p - lr*u.
API int repops_adamw_param(const float* p, const float* m, const float* v, float* out,
                           int64_t n, float bc1, float bc2, float eps, float lr, float wd,
                           int decay, int nthreads) {
  if (n < 0 || nthreads <= 0) return -2;
  team(n > 65536, nthreads, [&]() {
#pragma omp for schedule(static)
    for (int64_t lo = 0; lo < n; lo += 16384) {
      FpGuard guard;
      const int64_t hi = std::min(n, lo + 16384);
      for (int64_t i = lo; i < hi; i++) {
        const float mh = m[i] / bc1;
        const float den = std::sqrt(v[i] / bc2) + eps;
        float u = mh / den;
        if (decay) u = u + wd * p[i];
        out[i] = p[i] - lr * u;
      }
    }
  });
  return 0;
}

// RELU: y = +0 if x <= 0 else x (NaN stays); RELU_GRAD: y = g if x > 0 else +0.  Compares
// and copies only (FpGuard: DAZ would make subnormals compare as zero).
API int repops_relu(const float* x, float* y, int64_t n) {
  if (n < 0) return -2;
  FpGuard guard;
  for (int64_t i = 0; i < n; i++) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
  return 0;
}

API int repops_relu_grad(const float* x, const float* g, float* y, int64_t n) {
  if (n < 0) return -2;
  FpGuard guard;
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? g[i] : 0.0f;
  return 0;
}

// TAKE: out[bi][j] = flat(x[bi])[idx[j]] (idx < 0: all-zero bits, i.e. +0 / int 0) for
// b entries of per elements each, n indices; elements of es = 4 or 8 bytes, copied as bit
// patterns.  Returns 0, -2 for a bad argument, -3 for an index >= per.
extern "C++" {
template <class T>
int take_t(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ out,
           int64_t b, int64_t per, int64_t n) {
  for (int64_t j = 0; j < n; j++)
    if (idx[j] >= per) return -3;
  for (int64_t bi = 0; bi < b; bi++) {
    const T* src = x + bi * per;
    T* dst = out + bi * n;
    for (int64_t j = 0; j < n; j++) {
      const int64_t k = idx[j];
      dst[j] = k < 0 ? T(0) : src[k];
    }
  }
  return 0;
}
}  // extern "C++"

API int repops_take(const void* x, const int64_t* idx, void* out, int64_t b, int64_t per,
                    int64_t n, int es) {
  if (b < 0 || per < 0 || n < 0) return -2;
  if (es == 4)
    return take_t(static_cast<const uint32_t*>(x), idx, static_cast<uint32_t*>(out), b, per, n);
  if (es == 8)
    return take_t(static_cast<const uint64_t*>(x), idx, static_cast<uint64_t*>(out), b, per, n);
  return -2;
}

// MAX_GRAD over x (outer, len, inner) float32, g (outer, 1, inner): out = g at the first
// index of each line where x is maximal (the first NaN if the line has one), +0 elsewhere.
// Values are compared, never computed; g is copied as its bit pattern.
API int repops_max_grad(const float* x, const uint32_t* g, uint32_t* out, int64_t outer,
                        int64_t len, int64_t inner) {
  if (outer < 0 || len < 1 || inner < 0) return -2;
  FpGuard guard;  // DAZ would make subnormals compare equal to zero
  std::memset(out, 0, sizeof(uint32_t) * outer * len * inner);
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t i = 0; i < inner; i++) {
      const float* xl = x + o * len * inner + i;
      int64_t best = -1;
      for (int64_t t = 0; t < len; t++)
        if (std::isnan(xl[t * inner])) {
          best = t;
          break;
        }
      if (best < 0) {
        best = 0;
        for (int64_t t = 1; t < len; t++)
          if (xl[t * inner] > xl[best * inner]) best = t;
      }
      out[(o * len + best) * inner + i] = g[o * inner + i];
    }
  }
  return 0;
}

// DROPOUT_MASK element i of n: w = rng.bits32 of counter i under the four round keys
// k0..k3 (repops/rng.py: key-xor, xor-shift 16, times the round's multiplier, xor-shift
// 13, times 0x1B873593, xor-shift 16; all mod 2**32); out[i] = scale if (w >> 8) >=
// threshold else +0.  Exact integer math.
API int repops_dropout_mask(uint32_t k0, uint32_t k1, uint32_t k2, uint32_t k3,
                            int64_t threshold, float scale, float* out, int64_t n) {
  if (n < 0 || n > (int64_t(1) << 32)) return -2;
  const uint32_t keys[4] = {k0, k1, k2, k3};
  const uint32_t muls[4] = {0x2C1B3C6Du, 0x297A2D39u, 0x3D6B5A95u, 0x2C1B3C6Du};
  for (int64_t i = 0; i < n; i++) {
    uint32_t x = static_cast<uint32_t>(i);
    for (int r = 0; r < 4; r++) {
      x ^= keys[r];
      x ^= x >> 16;
      x *= muls[r];
      x ^= x >> 13;
      x *= 0x1B873593u;
      x ^= x >> 16;
    }
    out[i] = static_cast<int64_t>(x >> 8) >= threshold ? scale : 0.0f;
  }
  return 0;
}

// Clears FTZ/DAZ and sets round-to-nearest on the calling thread and on every thread of
// the OpenMP pool (torch's pool is the same libgomp runtime); returns how many threads.
API int repops_sanitize_fp(int nthreads) {
  int seen = 0;
#pragma omp parallel num_threads(nthreads) reduction(+ : seen)
  {
    _mm_setcsr((_mm_getcsr() & ~kFtzDazRc) | kMasks);
    seen += 1;
  }
  _mm_setcsr((_mm_getcsr() & ~kFtzDazRc) | kMasks);
  return seen;
}

// Test hook: sets FTZ and DAZ on the calling thread (to show they cannot change a bit).
API void repops_set_ftz_daz_for_tests(int on) {
  const unsigned cur = _mm_getcsr();
  _mm_setcsr(on ? (cur | 0x8040u) : (cur & ~0x8040u));
}

}  // extern "C"
