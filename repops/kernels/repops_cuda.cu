// repops-2 matmul on CUDA: the same per-element operations as repops_kernels.cpp.
//
// Each output element is one thread: for each chunk of KC consecutive k (increasing), an
// __fmaf_rn chain from +0, then C = P_0, C = __fadd_rn(C, P_c).  Shared-memory tiles of
// TILE k values never change the order (TILE divides KC).  No tensor cores, no split-k,
// built with --fmad=false -ftz=false -prec-div=true -prec-sqrt=true, never fast-math.
// UNVERIFIED on hardware at the time of writing (no GPU was available); bench/gpu_check.sh
// checks it bit for bit against the CPU kernels.

#include <torch/extension.h>

#include <cuda_runtime.h>

constexpr int TILE = 16;

__global__ void repops_matmul_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                     float* __restrict__ c, int64_t m, int64_t k, int64_t n,
                                     int64_t sab, int64_t sam, int64_t sak, int64_t sbb,
                                     int64_t sbk, int64_t sbn, int64_t kc) {
  __shared__ float as[TILE][TILE + 1];
  __shared__ float bs[TILE][TILE + 1];
  const int64_t bi = blockIdx.z;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * TILE + threadIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * TILE + threadIdx.x;
  const float* A = a + bi * sab;
  const float* B = b + bi * sbb;
  float out = 0.0f;
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += TILE) {
    const int64_t ka = k0 + threadIdx.x, kb = k0 + threadIdx.y;
    as[threadIdx.y][threadIdx.x] = (i < m && ka < k) ? A[i * sam + ka * sak] : 0.0f;
    bs[threadIdx.y][threadIdx.x] = (j < n && kb < k) ? B[kb * sbk + j * sbn] : 0.0f;
    __syncthreads();
    const int64_t lim = k - k0 < TILE ? k - k0 : TILE;
    for (int t = 0; t < lim; t++) {
      acc = __fmaf_rn(as[threadIdx.y][t], bs[t][threadIdx.x], acc);
      const int64_t kk = k0 + t + 1;  // k values consumed so far
      if (kk % kc == 0 || kk == k) {
        out = (kk <= kc) ? acc : __fadd_rn(out, acc);
        acc = 0.0f;
      }
    }
    __syncthreads();
  }
  if (i < m && j < n) c[(bi * m + i) * n + j] = out;
}

torch::Tensor repops_matmul(torch::Tensor a, torch::Tensor b, int64_t kc) {
  TORCH_CHECK(a.is_cuda() && b.is_cuda(), "repops_matmul: CUDA tensors");
  TORCH_CHECK(a.scalar_type() == torch::kFloat32 && b.scalar_type() == torch::kFloat32,
              "repops_matmul: float32");
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3, "repops_matmul: (nb, m, k) x (nb, k, n)");
  TORCH_CHECK(kc % TILE == 0, "repops_matmul: KC must be a multiple of the tile");
  const int64_t nb = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  auto c = torch::empty({nb, m, n}, a.options());
  if (nb == 0 || m == 0 || n == 0) return c;
  if (k == 0) return c.zero_();
  dim3 block(TILE, TILE);
  dim3 grid((n + TILE - 1) / TILE, (m + TILE - 1) / TILE, nb);
  repops_matmul_kernel<<<grid, block>>>(a.data_ptr<float>(), b.data_ptr<float>(),
                                        c.data_ptr<float>(), m, k, n, a.stride(0),
                                        a.stride(1), a.stride(2), b.stride(0), b.stride(1),
                                        b.stride(2), kc);
  const cudaError_t err = cudaGetLastError();
  TORCH_CHECK(err == cudaSuccess, "repops_matmul: ", cudaGetErrorString(err));
  return c;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("matmul", &repops_matmul, "repops-2 matmul"); }
