// Host emulation of the repops-2 CUDA matmul kernel (test support, never shipped).
//
// Runs repops_cuda.cu's grid with the SAME phase functions (repops_cuda_core.h compiled as
// host C++), for either kernel (the simple one: 16 x 16 threads per 16 x 16 block of C;
// the register-tiled one: 256 threads per 128 x 64 block, 8 x 4 outputs each), or the one
// choose_kernel picks as the extension does: the launches of for_each_launch, in each
// every block (z, y, x), in each block for every k-tile first all threads' load_tile (the
// __syncthreads() after it: the tiles are whole), then all threads' consume_tile (the
// __syncthreads() after it: no load overwrites a tile still being read), and at the end
// all threads' store.  The shared tiles are poisoned with NaN before each load, so a
// thread reading a slot no thread wrote would show.  Any order
// of threads between two barriers is one the device may pick, and the kernel's result must
// not depend on it; running them sequentially checks indexing, tiling, chunking and the
// launch offsets, and std::fmaf / `+` are the IEEE operations __fmaf_rn / __fadd_rn are.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "repops_cuda_core.h"

namespace {

using repops_cuda::Acc;
using repops_cuda::Geo;
using repops_cuda::Thread;
using repops_cuda::TILE;
using repops_cuda::Tiles;

// The device keeps subnormals (-ftz=false) and rounds to nearest: so must the host, whatever
// the calling thread's MXCSR says (FTZ, DAZ and rounding control cleared, restored after).
struct HostFp {
#if defined(__x86_64__) || defined(__i386__)
  unsigned old = _mm_getcsr();
  HostFp() { _mm_setcsr((old & ~(0x8000u | 0x0040u | 0x6000u)) | 0x1F80u); }
  ~HostFp() { _mm_setcsr(old); }
#endif
};

// A copy of an operand's storage span with an inaccessible page on each side, the data
// flush against the upper one (at_end) or the lower one: a read outside the operand ends
// the process (SIGSEGV) instead of passing unseen (out-of-range values never reach an
// output, so the bits alone cannot show such a read).
struct Guarded {
  void* base = nullptr;
  size_t len = 0;
  const float* p = nullptr;
  Guarded(const float* src, int64_t span, bool at_end) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = static_cast<size_t>(span) * sizeof(float);
    const size_t data_pages = (bytes + page - 1) / page;
    len = (data_pages + 2) * page;
    base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
      base = nullptr;
      return;
    }
    char* lo = static_cast<char*>(base) + page;
    char* dst = at_end ? lo + data_pages * page - bytes : lo;
    if (bytes != 0) std::memcpy(dst, src, bytes);
    mprotect(base, page, PROT_NONE);
    mprotect(lo + data_pages * page, page, PROT_NONE);
    p = reinterpret_cast<const float*>(dst);
  }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  ~Guarded() {
    if (base != nullptr) munmap(base, len);
  }
};

// Elements from an operand's first to its last (strides are never negative in torch).
int64_t span(int64_t d0, int64_t d1, int64_t d2, int64_t s0, int64_t s1, int64_t s2) {
  if (d0 == 0 || d1 == 0 || d2 == 0) return 0;
  return (d0 - 1) * s0 + (d1 - 1) * s1 + (d2 - 1) * s2 + 1;
}

void run_block(const Geo& g, int64_t bz, int64_t by, int64_t bx, bool reverse_threads) {
  Tiles tiles;
  Thread th[TILE * TILE];
  Acc acc[TILE * TILE];
  for (int ty = 0; ty < TILE; ty++)
    for (int tx = 0; tx < TILE; tx++) {
      th[ty * TILE + tx] = repops_cuda::thread_at(bz, by, bx, ty, tx);
      acc[ty * TILE + tx] = repops_cuda::acc_init(g);
    }
  // Within a phase the threads run in index order, or in reverse to show it does not matter.
  auto idx = [&](int q) { return reverse_threads ? TILE * TILE - 1 - q : q; };
  for (int64_t k0 = 0; k0 < g.k; k0 += TILE) {
    // Poison the tiles: a thread that read an element no thread loaded would see NaN.
    for (int r = 0; r < TILE; r++)
      for (int c = 0; c < TILE + 1; c++) tiles.as[r][c] = tiles.bs[r][c] = __builtin_nanf("");
    for (int q = 0; q < TILE * TILE; q++) repops_cuda::load_tile(g, th[idx(q)], k0, tiles);
    // __syncthreads()
    for (int q = 0; q < TILE * TILE; q++)
      repops_cuda::consume_tile(g, th[idx(q)], k0, tiles, acc[idx(q)]);
    // __syncthreads()
  }
  for (int q = 0; q < TILE * TILE; q++) repops_cuda::store(g, th[idx(q)], acc[idx(q)]);
}

void run_block_tiled(const Geo& g, int64_t bz, int64_t by, int64_t bx, bool reverse_threads) {
  namespace rt = repops_cuda::rt;
  constexpr int T = rt::THREADS;
  rt::Tiles tiles;
  std::vector<rt::Thread> th(T);
  std::vector<rt::Acc> acc(T);
  for (int q = 0; q < T; q++) {
    th[q] = rt::thread_at(bz, by, bx, q);
    acc[q] = rt::acc_init(g);
  }
  auto idx = [&](int q) { return reverse_threads ? T - 1 - q : q; };
  for (int64_t k0 = 0; k0 < g.k; k0 += rt::BK) {
    for (int u = 0; u < rt::BK; u++) {
      for (int r = 0; r < rt::BM + 4; r++) tiles.as[u][r] = __builtin_nanf("");
      for (int c = 0; c < rt::BN + 4; c++) tiles.bs[u][c] = __builtin_nanf("");
    }
    for (int q = 0; q < T; q++) rt::load_tile(g, th[idx(q)], k0, tiles);
    // __syncthreads()
    for (int q = 0; q < T; q++) rt::consume_tile(g, th[idx(q)], k0, tiles, acc[idx(q)]);
    // __syncthreads()
  }
  for (int q = 0; q < T; q++) rt::store(g, th[idx(q)], acc[idx(q)]);
}

}  // namespace

// c (nb, m, n) contiguous = a x b as the CUDA kernel computes it.  max_yz stands for the
// device's grid y/z limit (MAX_GRID_YZ, or smaller to exercise the launch offsets);
// kernel: 0 the simple one, 1 the register-tiled one, -1 the one choose_kernel picks.
// guard: 0 reads a and b in place; 1 (2) from guarded copies flush against the page after
// (before) them.  Returns check_geo's code, 4 for a bad max_yz, 5 for a bad kernel, 6 for a
// bad guard or a failed mapping; 0 when c was written.
extern "C" __attribute__((visibility("default"))) int repops_cuda_emu_matmul(
    const float* a, const float* b, float* c, int64_t nb, int64_t m, int64_t k, int64_t n,
    int64_t sab, int64_t sam, int64_t sak, int64_t sbb, int64_t sbk, int64_t sbn, int64_t kc,
    int64_t max_yz, int reverse_threads, int kernel, int guard) {
  Geo g{a, b, c, nb, m, k, n, sab, sam, sak, sbb, sbk, sbn, kc};
  const int bad = repops_cuda::check_geo(g);
  if (bad != 0) return bad;
  if (max_yz <= 0 || max_yz > repops_cuda::MAX_GRID_YZ) return 4;
  if (kernel < -1 || kernel > 1) return 5;
  if (guard < 0 || guard > 2) return 6;
  if (nb == 0 || m == 0 || n == 0) return 0;
  std::optional<Guarded> ga, gb;
  if (guard != 0) {
    ga.emplace(a, span(nb, m, k, sab, sam, sak), guard == 1);
    gb.emplace(b, span(nb, k, n, sbb, sbk, sbn), guard == 1);
    if (ga->base == nullptr || gb->base == nullptr) return 6;
    g.a = ga->p;
    g.b = gb->p;
  }
  const repops_cuda::Kernel kern = repops_cuda::kernel_for(g, kernel);  // as the extension
  const bool tiled = kern == repops_cuda::Kernel::tiled;
  const HostFp fp;
  repops_cuda::for_each_launch(g, max_yz, repops_cuda::block_rows(kern),
                               repops_cuda::block_cols(kern), [&](int64_t z0, int64_t nz,
                                                                  int64_t y0, int64_t ny,
                                                                  int64_t nx) {
    for (int64_t z = 0; z < nz; z++)
      for (int64_t y = 0; y < ny; y++)
        for (int64_t x = 0; x < nx; x++) {
          if (tiled) {
            run_block_tiled(g, z0 + z, y0 + y, x, reverse_threads != 0);
          } else {
            run_block(g, z0 + z, y0 + y, x, reverse_threads != 0);
          }
        }
  });
  return 0;
}

// Which kernel the extension launches for this shape (0 simple, 1 tiled): choose_kernel.
extern "C" __attribute__((visibility("default"))) int repops_cuda_emu_choose(int64_t nb,
                                                                            int64_t m,
                                                                            int64_t k,
                                                                            int64_t n) {
  const Geo g{nullptr, nullptr, nullptr, nb, m, k, n, 0, 0, 0, 0, 0, 0, 128};
  return static_cast<int>(repops_cuda::choose_kernel(g));
}
