// repops-2 matmul on CUDA: the same per-element operations as repops_kernels.cpp.
//
// Each output element: for each chunk of KC consecutive k (increasing), an __fmaf_rn chain
// from +0, then C = P_0, C = __fadd_rn(C, P_c).  Two kernels, the same operations per
// element: repops_matmul_kernel (one thread per output, 16 x 16 shared tiles) and
// repops_matmul_tiled_kernel (256 threads per 128 x 64 block of C, 8 x 4 outputs per
// thread in registers, 16-deep k-tiles of A and B in shared memory, 128-bit shared
// reads); the wrapper picks one with choose_kernel (the tiled one for large m x n).  No
// tensor cores, no split-k, no atomics; built with --fmad=false -ftz=false -prec-div=true
// -prec-sqrt=true, never fast-math.  The arithmetic is in repops_cuda_core.h as per-thread
// phase functions; these kernels only order them with barriers.
//
// What is verified without a GPU (tests/repops/test_cuda_kernel_source.py): this file
// compiles with nvcc 13.0 for sm_90 (the kernels alone in seconds with
// -DREPOPS_CUDA_KERNEL_ONLY, the whole extension against torch's headers in a slow test);
// its PTX has only fma.rn.f32 / add.rn.f32 float arithmetic (no .ftz, no approx, no mma,
// no contraction) and no integer division, its SASS (where nvdisasm is at hand) only
// FFMA / FADD; ptxas reports no spills and the tiled kernel within 128 registers at its
// launch bounds; and the same core header compiled as host C++ and run block by block,
// thread by thread (tests/support/cuda_host_emu.cpp) gives, for both kernels, the CPU
// kernels' bits.  NOT verified: it has never run on a GPU (neither its speed nor its
// launch; bench/gpu_check.sh does that where one is lent).

#include "repops_cuda_core.h"

__global__ void repops_matmul_kernel(repops_cuda::Geo g, int64_t z0, int64_t y0) {
  using namespace repops_cuda;
  __shared__ Tiles tiles;
  const Thread t = thread_at(z0 + blockIdx.z, y0 + blockIdx.y, blockIdx.x,
                             static_cast<int>(threadIdx.y), static_cast<int>(threadIdx.x));
  Acc r = acc_init(g);
  for (int64_t k0 = 0; k0 < g.k; k0 += TILE) {
    load_tile(g, t, k0, tiles);
    __syncthreads();  // the tiles are whole
    consume_tile(g, t, k0, tiles, r);
    __syncthreads();  // every thread is done with them before the next load
  }
  store(g, t, r);
}

// 2 blocks of 256 threads per SM: at most 128 registers per thread.
__global__ void __launch_bounds__(repops_cuda::rt::THREADS, 2)
    repops_matmul_tiled_kernel(repops_cuda::Geo g, int64_t z0, int64_t y0) {
  namespace rt = repops_cuda::rt;  // qualified calls: Geo's namespace has the simple ones
  __shared__ rt::Tiles tiles;
  const rt::Thread t = rt::thread_at(z0 + blockIdx.z, y0 + blockIdx.y, blockIdx.x,
                                     static_cast<int>(threadIdx.x));
  rt::Acc r = rt::acc_init(g);
  for (int64_t k0 = 0; k0 < g.k; k0 += rt::BK) {
    rt::load_tile(g, t, k0, tiles);
    __syncthreads();  // the tiles are whole
    rt::consume_tile(g, t, k0, tiles, r);
    __syncthreads();  // every thread is done with them before the next load
  }
  rt::store(g, t, r);
}

#ifndef REPOPS_CUDA_KERNEL_ONLY

// c10's stream and guard headers, not ATen/cuda/CUDAContext.h: the same current stream
// (at::cuda::getCurrentCUDAStream is c10's), without the cuBLAS/cuSPARSE headers that
// CUDAContext.h pulls in and a bare CUDA toolkit lacks.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <cuda_runtime.h>

// kernel: -1 the one choose_kernel picks (what repops uses), 0 the simple one, 1 the
// register-tiled one (for benchmarks and tests: the bits are the same).
torch::Tensor repops_matmul(torch::Tensor a, torch::Tensor b, int64_t kc, int64_t kernel) {
  using namespace repops_cuda;
  TORCH_CHECK(a.is_cuda() && b.is_cuda(), "repops_matmul: CUDA tensors");
  TORCH_CHECK(a.device() == b.device(), "repops_matmul: operands on ", a.device(), " and ",
              b.device());
  TORCH_CHECK(a.scalar_type() == torch::kFloat32 && b.scalar_type() == torch::kFloat32,
              "repops_matmul: float32");
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3, "repops_matmul: (nb, m, k) x (nb, k, n)");
  TORCH_CHECK(a.size(0) == b.size(0) && a.size(2) == b.size(1), "repops_matmul: shapes ",
              a.sizes(), " and ", b.sizes());
  TORCH_CHECK(kernel >= -1 && kernel <= 1, "repops_matmul: kernel -1, 0 or 1, got ", kernel);
  const c10::cuda::CUDAGuard guard(a.device());  // launch on the operands' device
  const int64_t nb = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  auto c = torch::empty({nb, m, n}, a.options());
  const Geo g{a.data_ptr<float>(), b.data_ptr<float>(), c.data_ptr<float>(),
              nb, m, k, n,
              a.stride(0), a.stride(1), a.stride(2),
              b.stride(0), b.stride(1), b.stride(2),
              kc};
  TORCH_CHECK(check_geo(g) == 0, "repops_matmul: bad geometry (code ", check_geo(g), ")");
  if (nb == 0 || m == 0 || n == 0) return c;
  // k == 0 needs no special case: no tile runs and every thread stores +0.
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(a.device().index());
  const Kernel kern = kernel_for(g, kernel);
  const bool tiled = kern == Kernel::tiled;
  const auto launch = [&](int64_t z0, int64_t nz, int64_t y0, int64_t ny, int64_t nx) {
    const dim3 grid(static_cast<unsigned>(nx), static_cast<unsigned>(ny),
                    static_cast<unsigned>(nz));
    if (tiled) {
      repops_matmul_tiled_kernel<<<grid, dim3(rt::THREADS), 0, stream>>>(g, z0, y0);
    } else {
      repops_matmul_kernel<<<grid, dim3(TILE, TILE), 0, stream>>>(g, z0, y0);
    }
    const cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "repops_matmul: ", cudaGetErrorString(err));
  };
  for_each_launch(g, MAX_GRID_YZ, block_rows(kern), block_cols(kern), launch);
  return c;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("matmul", &repops_matmul, "repops-2 matmul", pybind11::arg("a"), pybind11::arg("b"),
        pybind11::arg("kc"), pybind11::arg("kernel") = -1);
}

#endif  // REPOPS_CUDA_KERNEL_ONLY
