// CUDA kernels of Gaussian-to-occupancy accumulation. One warp per Gaussian walks the voxels of
// its radius_sigma box, 32 at a time. Forward: atomic adds into the per-voxel sums (lanes split
// the C channels of a voxel, so the feature atomics are coalesced). Backward: recomputes each
// weight, reads the per-voxel output gradients and reduces over the warp; every Gaussian's
// gradients are owned by one warp, so no atomics and no (voxel, Gaussian) buffer.
#include <cuda_runtime.h>

#include "cuda/accumulate.h"

namespace gaussocc {
namespace accum {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// Voxel t (0-based, row-major) of the box: its flat grid index and centre - mean.
template <typename T>
struct BoxWalker {
  int64_t lo[3], ny, nz, total, Y, Z, base;

  __device__ BoxWalker(const Prepared<T>& pr, const Grid<T>& grid, int64_t batch_offset) {
    for (int j = 0; j < 3; ++j) lo[j] = pr.lo[j];
    const int64_t nx = pr.hi[0] - pr.lo[0] + 1;
    ny = pr.hi[1] - pr.lo[1] + 1;
    nz = pr.hi[2] - pr.lo[2] + 1;
    total = nx * ny * nz;
    Y = grid.dims[1];
    Z = grid.dims[2];
    base = batch_offset;
  }

  __device__ int64_t voxel(int64_t t, const Grid<T>& grid, const T* mean, T* d) const {
    const int64_t x = lo[0] + t / (ny * nz);
    const int64_t y = lo[1] + (t / nz) % ny;
    const int64_t z = lo[2] + t % nz;
    d[0] = voxel_center(grid, 0, x) - mean[0];
    d[1] = voxel_center(grid, 1, y) - mean[1];
    d[2] = voxel_center(grid, 2, z) - mean[2];
    return base + (x * Y + y) * Z + z;
  }
};

template <typename T>
__global__ void forward_kernel(DeviceInputs<T> in, T* weight, T* wfeat, T* log_t, int32_t* n_opaque) {
  const int lane = threadIdx.x & 31;
  const int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (i >= in.B * in.N) return;  // uniform over the warp
  const T a = in.opacities[i];
  // Gaussians with opacity 0 add exactly nothing.
  if (!in.valid[i] || !(a > T(0))) return;
  Prepared<T> pr;
  if (!prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.k, in.grid, &pr)) return;
  const int64_t V = in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  const BoxWalker<T> box(pr, in.grid, (i / in.N) * V);
  const T* mean = in.means + i * 3;
  const T* feat = in.features + i * in.C;
  const T k2 = in.k * in.k;
  for (int64_t start = 0; start < box.total; start += 32) {
    const int64_t t = start + lane;
    T alpha = 0;
    long long v = 0;
    if (t < box.total) {
      T d[3];
      v = box.voxel(t, in.grid, mean, d);
      const T d2 = mahalanobis_sq(pr.conic, d);
      if (d2 <= k2) alpha = a * exp(T(-0.5) * d2);
    }
    const bool hit = alpha > T(0);
    if (hit) {
      atomicAdd(weight + v, alpha);
      if (in.probabilistic) {
        if (alpha >= T(1)) {
          atomicAdd(n_opaque + v, 1);
        } else {
          atomicAdd(log_t + v, T(log1p(-alpha)));
        }
      }
    }
    unsigned mask = __ballot_sync(kFullMask, hit);
    while (mask) {
      const int src = __ffs(mask) - 1;
      mask &= mask - 1;
      const T alpha_s = __shfl_sync(kFullMask, alpha, src);
      const long long v_s = __shfl_sync(kFullMask, v, src);
      for (int64_t c = lane; c < in.C; c += 32) atomicAdd(wfeat + v_s * in.C + c, alpha_s * feat[c]);
    }
  }
}

template <typename T>
__global__ void occupancy_kernel(const T* log_t, const int32_t* n_opaque, int64_t count, T* occupancy) {
  const int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v < count) occupancy[v] = occupancy_from_log(log_t[v], n_opaque[v]);
}

template <typename T>
__global__ void backward_kernel(DeviceInputs<T> in, const T* log_t, const int32_t* n_opaque, const T* g_occ,
                                const T* g_weight, const T* g_wfeat, T* g_means, T* g_quats, T* g_scales,
                                T* g_opacities, T* g_features) {
  const int lane = threadIdx.x & 31;
  const int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (i >= in.B * in.N || !in.valid[i]) return;  // uniform over the warp
  Prepared<T> pr;
  if (!prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.k, in.grid, &pr)) return;
  const int64_t C = in.C;
  const int64_t V = in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  const BoxWalker<T> box(pr, in.grid, (i / in.N) * V);
  const T* mean = in.means + i * 3;
  const T* feat = in.features + i * C;
  T* g_feat = g_features + i * C;  // this warp's row: lane c owns channels c, c + 32, ...
  const T a = in.opacities[i];
  const T k2 = in.k * in.k;
  GradSums<T> sums;
  for (int64_t start = 0; start < box.total; start += 32) {
    const int64_t t = start + lane;
    bool inside = false;
    T d[3] = {0, 0, 0};
    T g = 0, alpha = 0, g_alpha = 0;
    long long v = 0;
    if (t < box.total) {
      v = box.voxel(t, in.grid, mean, d);
      const T d2 = mahalanobis_sq(pr.conic, d);
      inside = d2 <= k2;
      if (inside) {
        g = exp(T(-0.5) * d2);
        alpha = a * g;
        g_alpha = g_weight[v];
        if (in.probabilistic) g_alpha += g_occ[v] * transmittance_of_others(alpha, log_t[v], n_opaque[v]);
      }
    }
    unsigned mask = __ballot_sync(kFullMask, inside);
    while (mask) {
      const int src = __ffs(mask) - 1;
      mask &= mask - 1;
      const T alpha_s = __shfl_sync(kFullMask, alpha, src);
      const long long v_s = __shfl_sync(kFullMask, v, src);
      T dot = 0;
      for (int64_t c = lane; c < C; c += 32) {
        const T gw = g_wfeat[v_s * C + c];
        dot += gw * feat[c];
        g_feat[c] += gw * alpha_s;
      }
      dot = warp_sum(dot);
      if (lane == src) g_alpha += dot;
    }
    if (inside) add_voxel_grad(g_alpha, g, a, d, &sums);
  }
  sums.opacity = warp_sum(sums.opacity);
  for (int j = 0; j < 3; ++j) sums.q_delta[j] = warp_sum(sums.q_delta[j]);
  for (int j = 0; j < 6; ++j) sums.q_delta2[j] = warp_sum(sums.q_delta2[j]);
  if (lane == 0) {
    g_opacities[i] = sums.opacity;
    finish_grads(in.quats + i * 4, in.scales + i * 3, pr.conic, sums, g_means + i * 3, g_quats + i * 4,
                 g_scales + i * 3);
  }
}

int64_t warp_blocks(int64_t gaussians) { return (gaussians + kWarpsPerBlock - 1) / kWarpsPerBlock; }

}  // namespace

template <typename T>
cudaError_t launch_accumulate_forward(const DeviceInputs<T>& in, T* occupancy, T* weight, T* wfeat, T* log_t,
                                      int32_t* n_opaque, cudaStream_t stream) {
  const int64_t gaussians = in.B * in.N;
  if (gaussians > 0) {
    forward_kernel<T><<<warp_blocks(gaussians), kWarpsPerBlock * 32, 0, stream>>>(in, weight, wfeat, log_t,
                                                                                    n_opaque);
  }
  const int64_t voxels = in.B * in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  if (in.probabilistic && voxels > 0) {
    occupancy_kernel<T><<<(voxels + 255) / 256, 256, 0, stream>>>(log_t, n_opaque, voxels, occupancy);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_accumulate_backward(const DeviceInputs<T>& in, const T* log_t, const int32_t* n_opaque,
                                       const T* g_occupancy, const T* g_weight, const T* g_wfeat, T* g_means,
                                       T* g_quats, T* g_scales, T* g_opacities, T* g_features,
                                       cudaStream_t stream) {
  const int64_t gaussians = in.B * in.N;
  if (gaussians > 0) {
    backward_kernel<T><<<warp_blocks(gaussians), kWarpsPerBlock * 32, 0, stream>>>(
        in, log_t, n_opaque, g_occupancy, g_weight, g_wfeat, g_means, g_quats, g_scales, g_opacities,
        g_features);
  }
  return cudaGetLastError();
}

template cudaError_t launch_accumulate_forward<float>(const DeviceInputs<float>&, float*, float*, float*, float*,
                                                      int32_t*, cudaStream_t);
template cudaError_t launch_accumulate_forward<double>(const DeviceInputs<double>&, double*, double*, double*,
                                                       double*, int32_t*, cudaStream_t);
template cudaError_t launch_accumulate_backward<float>(const DeviceInputs<float>&, const float*, const int32_t*,
                                                       const float*, const float*, const float*, float*, float*,
                                                       float*, float*, float*, cudaStream_t);
template cudaError_t launch_accumulate_backward<double>(const DeviceInputs<double>&, const double*,
                                                        const int32_t*, const double*, const double*,
                                                        const double*, double*, double*, double*, double*,
                                                        double*, cudaStream_t);

}  // namespace accum
}  // namespace gaussocc
