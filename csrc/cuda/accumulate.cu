// CUDA kernels of Gaussian-to-occupancy accumulation. One warp per Gaussian walks the voxels of
// its support's box, 32 at a time. Forward: atomic adds into the per-voxel sums (lanes split
// the C channels of a voxel, so the feature atomics are coalesced), the class sums going straight
// into the probs output; then one thread per voxel turns the sums into probabilities in place.
// Backward: one thread per voxel computes the per-voxel factors (accumulate_math.h: voxel_grad);
// one warp per Gaussian recomputes each weight, reads the factors and the output gradients and
// reduces over the warp; every Gaussian's gradients are owned by one warp, so no atomics and no
// (voxel, Gaussian) buffer.
#include <cuda_runtime.h>

#include "cuda/accumulate.h"

namespace gaussocc {
namespace accum {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kVoxelThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// Voxel t (0-based, row-major) of the box: its index in the grid and centre - mean.
template <typename T>
struct BoxWalker {
  int64_t lo[3], ny, nz, total, Y, Z;

  __device__ BoxWalker(const Prepared<T>& pr, const Grid<T>& grid) {
    for (int j = 0; j < 3; ++j) lo[j] = pr.lo[j];
    const int64_t nx = pr.hi[0] - pr.lo[0] + 1;
    ny = pr.hi[1] - pr.lo[1] + 1;
    nz = pr.hi[2] - pr.lo[2] + 1;
    total = nx * ny * nz;
    Y = grid.dims[1];
    Z = grid.dims[2];
  }

  __device__ int64_t voxel(int64_t t, const Grid<T>& grid, const T* mean, T* d) const {
    const int64_t x = lo[0] + t / (ny * nz);
    const int64_t y = lo[1] + (t / nz) % ny;
    const int64_t z = lo[2] + t % nz;
    d[0] = voxel_center(grid, 0, x) - mean[0];
    d[1] = voxel_center(grid, 1, y) - mean[1];
    d[2] = voxel_center(grid, 2, z) - mean[2];
    return (x * Y + y) * Z + z;
  }
};

template <typename T>
__global__ void forward_kernel(Inputs<T> in, T* occupancy, T* probs, T* weight, T* log_t, int32_t* n_opaque) {
  const int lane = threadIdx.x & 31;
  const int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (i >= in.B * in.N) return;  // uniform over the warp
  const int mode = in.p.mode;
  const bool prob = is_probabilistic(mode);
  const T a = in.opacities[i];
  // Gaussians with opacity 0 add exactly nothing (except to GaussianFormer-2's occupancy).
  if (!in.valid[i] || !(mode == kGaussianFormer2 || a > T(0))) return;
  Prepared<T> pr;
  if (!prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.p.k, in.grid, mode, &pr)) return;
  const int64_t V = in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  const int64_t base = (i / in.N) * V;
  const int64_t C = in.C, Cout = prob ? C + 1 : C;
  const BoxWalker<T> box(pr, in.grid);
  const T* mean = in.means + i * 3;
  const T* feat = in.features + i * C;
  const T k2 = in.p.k * in.p.k;
  for (int64_t start = 0; start < box.total; start += 32) {
    const int64_t t = start + lane;
    Weights<T> w = {T(0), T(0)};
    long long v = 0;
    if (t < box.total) {
      T d[3];
      v = base + box.voxel(t, in.grid, mean, d);
      const T d2 = mahalanobis_sq(pr.conic, d);
      if (in_support(mode, d2, k2)) w = voxel_weights(mode, T(exp(T(-0.5) * d2)), a, pr.norm);
    }
    const bool hit = w.occ > T(0) || w.sem > T(0);
    if (hit) {
      if (!prob) {
        atomicAdd(occupancy + v, w.sem);
      } else {
        atomicAdd(weight + v, w.sem);
        if (w.occ >= T(1)) {
          atomicAdd(n_opaque + v, 1);
        } else {
          atomicAdd(log_t + v, T(log1p(-w.occ)));
        }
      }
    }
    unsigned mask = __ballot_sync(kFullMask, hit);
    while (mask) {
      const int src = __ffs(mask) - 1;
      mask &= mask - 1;
      const T sem_s = __shfl_sync(kFullMask, w.sem, src);
      const long long v_s = __shfl_sync(kFullMask, v, src);
      for (int64_t c = lane; c < C; c += 32)
        atomicAdd(probs + v_s * Cout + class_slot(c, in.p.empty, mode), sem_s * feat[c]);
    }
  }
}

template <typename T>
__global__ void finish_kernel(Params<T> p, int64_t C, int64_t count, const T* weight, const T* log_t,
                              const int32_t* n_opaque, T* probs, T* occupancy) {
  const int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v < count) finish_voxel(p, C, weight[v], log_t[v], n_opaque[v], probs + v * (C + 1), occupancy + v);
}

template <typename T>
__global__ void voxel_grad_kernel(Params<T> p, int64_t C, int64_t count, int64_t V, const T* probs, const T* weight,
                                  const T* log_t, const int32_t* n_opaque, StridedGrad<T> g_occ,
                                  StridedGrad<T> g_probs, VoxelGrad<T>* out) {
  const int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (v >= count) return;
  const int64_t b = v / V, vox = v % V;
  const bool prob = is_probabilistic(p.mode);
  const int64_t Cout = prob ? C + 1 : C;
  out[v] = voxel_grad(p, C, prob ? weight[v] : T(0), prob ? log_t[v] : T(0), prob ? n_opaque[v] : 0,
                      g_occ.ptr[b * g_occ.s0 + vox * g_occ.s1], g_probs.ptr + b * g_probs.s0 + vox * g_probs.s1,
                      g_probs.s2, probs + v * Cout);
}

template <typename T>
__global__ void backward_kernel(Inputs<T> in, const VoxelGrad<T>* vgrad, StridedGrad<T> g_probs,
                                const T* log_t, const int32_t* n_opaque, T* g_means, T* g_quats, T* g_scales,
                                T* g_opacities, T* g_features) {
  const int lane = threadIdx.x & 31;
  const int64_t i = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (i >= in.B * in.N || !in.valid[i]) return;  // uniform over the warp
  const int mode = in.p.mode;
  const bool prob = is_probabilistic(mode);
  Prepared<T> pr;
  if (!prepare(in.means + i * 3, in.quats + i * 4, in.scales + i * 3, in.p.k, in.grid, mode, &pr)) return;
  const int64_t C = in.C;
  const int64_t V = in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  const int64_t b = i / in.N;
  const BoxWalker<T> box(pr, in.grid);
  const T* mean = in.means + i * 3;
  const T* feat = in.features + i * C;
  T* g_feat = g_features + i * C;  // this warp's row: lane c owns channels c, c + 32, ...
  const T a = in.opacities[i];
  const T k2 = in.p.k * in.p.k;
  GradSums<T> sums;
  for (int64_t start = 0; start < box.total; start += 32) {
    const int64_t t = start + lane;
    bool inside = false;
    T d[3] = {0, 0, 0};
    T g = 0, g_occ = 0;
    Weights<T> w = {T(0), T(0)};
    VoxelGrad<T> vg = {T(0), T(0), T(0)};
    long long g_off = 0;
    if (t < box.total) {
      const int64_t vox = box.voxel(t, in.grid, mean, d);
      const T d2 = mahalanobis_sq(pr.conic, d);
      inside = in_support(mode, d2, k2);
      if (inside) {
        const int64_t v = b * V + vox;
        g = exp(T(-0.5) * d2);
        w = voxel_weights(mode, g, a, pr.norm);
        vg = vgrad[v];
        if (prob) g_occ = vg.g_o * transmittance_of_others(w.occ, log_t[v], n_opaque[v]);
        g_off = b * g_probs.s0 + vox * g_probs.s1;
      }
    }
    T my_dot = 0;
    unsigned mask = __ballot_sync(kFullMask, inside);
    while (mask) {
      const int src = __ffs(mask) - 1;
      mask &= mask - 1;
      const T sem_s = __shfl_sync(kFullMask, w.sem, src);
      const T r_s = __shfl_sync(kFullMask, vg.r, src);
      const long long off_s = __shfl_sync(kFullMask, g_off, src);
      T dot = 0;
      for (int64_t c = lane; c < C; c += 32) {
        const T gc = g_probs.ptr[off_s + class_slot(c, in.p.empty, mode) * g_probs.s2];
        dot += gc * feat[c];
        g_feat[c] += r_s * gc * sem_s;
      }
      dot = warp_sum(dot);
      if (lane == src) my_dot = dot;
    }
    if (inside) {
      T g_g, g_a;
      weight_vjp(mode, vg.g_w + vg.r * my_dot, g_occ, g, a, pr.norm, &g_g, &g_a);
      add_voxel_grad(g_g, g_a, g, d, &sums);
    }
  }
  sums.opacity = warp_sum(sums.opacity);
  for (int j = 0; j < 3; ++j) sums.q_delta[j] = warp_sum(sums.q_delta[j]);
  for (int j = 0; j < 6; ++j) sums.q_delta2[j] = warp_sum(sums.q_delta2[j]);
  if (lane == 0) {
    g_opacities[i] = sums.opacity;
    finish_grads(mode, a, in.quats + i * 4, in.scales + i * 3, pr.conic, sums, g_means + i * 3, g_quats + i * 4,
                 g_scales + i * 3);
  }
}

int64_t warp_blocks(int64_t gaussians) { return (gaussians + kWarpsPerBlock - 1) / kWarpsPerBlock; }
int64_t voxel_blocks(int64_t voxels) { return (voxels + kVoxelThreads - 1) / kVoxelThreads; }

}  // namespace

template <typename T>
void launch_accumulate_forward(const Inputs<T>& in, T* occupancy, T* probs, T* weight, T* log_t,
                               int32_t* n_opaque, cudaStream_t stream) {
  const int64_t gaussians = in.B * in.N;
  if (gaussians > 0) {
    forward_kernel<T><<<warp_blocks(gaussians), kWarpsPerBlock * 32, 0, stream>>>(in, occupancy, probs, weight,
                                                                                    log_t, n_opaque);
  }
  const int64_t voxels = in.B * in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  if (is_probabilistic(in.p.mode) && voxels > 0) {
    finish_kernel<T><<<voxel_blocks(voxels), kVoxelThreads, 0, stream>>>(in.p, in.C, voxels, weight, log_t,
                                                                         n_opaque, probs, occupancy);
  }
}

template <typename T>
void launch_accumulate_backward(const Inputs<T>& in, const T* probs, const T* weight, const T* log_t,
                                const int32_t* n_opaque, StridedGrad<T> g_occupancy, StridedGrad<T> g_probs,
                                VoxelGrad<T>* vgrad, T* g_means, T* g_quats, T* g_scales, T* g_opacities,
                                T* g_features, cudaStream_t stream) {
  const int64_t V = in.grid.dims[0] * in.grid.dims[1] * in.grid.dims[2];
  const int64_t voxels = in.B * V;
  if (voxels > 0) {
    voxel_grad_kernel<T><<<voxel_blocks(voxels), kVoxelThreads, 0, stream>>>(
        in.p, in.C, voxels, V, probs, weight, log_t, n_opaque, g_occupancy, g_probs, vgrad);
  }
  const int64_t gaussians = in.B * in.N;
  if (gaussians > 0) {
    backward_kernel<T><<<warp_blocks(gaussians), kWarpsPerBlock * 32, 0, stream>>>(
        in, vgrad, g_probs, log_t, n_opaque, g_means, g_quats, g_scales, g_opacities, g_features);
  }
}

#define GAUSSOCC_INSTANTIATE(T)                                                                              \
  template void launch_accumulate_forward<T>(const Inputs<T>&, T*, T*, T*, T*, int32_t*, cudaStream_t); \
  template void launch_accumulate_backward<T>(const Inputs<T>&, const T*, const T*, const T*,            \
                                              const int32_t*, StridedGrad<T>, StridedGrad<T>, VoxelGrad<T>*,   \
                                              T*, T*, T*, T*, T*, cudaStream_t);

GAUSSOCC_INSTANTIATE(float)
GAUSSOCC_INSTANTIATE(double)
#undef GAUSSOCC_INSTANTIATE

}  // namespace accum
}  // namespace gaussocc
