// CUDA kernel of the SNOG accept/reject op: one warp per image. The warp walks the candidates in
// order (the same order as the CPU kernel, so the results are identical); its lanes test the
// candidate against the accepted patches in parallel and lane 0 appends an accepted one.
#include "cuda/snog.h"
#include "gaussocc/common.h"
#include "gaussocc/snog_math.h"

namespace gaussocc {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;

__global__ void snog_accept_kernel(const int32_t* __restrict__ candidates, int64_t B, int64_t T,
                                   int32_t* __restrict__ accepted, int32_t* __restrict__ count,
                                   int32_t P, int64_t min_dist2) {
  const int64_t image = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (image >= B) return;  // all lanes of a warp share the image, so whole warps leave
  const int lane = threadIdx.x % kWarp;
  const int32_t* cand = candidates + image * T * 2;
  int32_t* acc = accepted + image * static_cast<int64_t>(P) * 2;
  int32_t n = clamp_value<int32_t>(count[image], 0, P);
  for (int64_t t = 0; t < T && n < P; ++t) {
    const int32_t r = cand[2 * t];
    const int32_t c = cand[2 * t + 1];
    if (r < 0) continue;
    bool clash = false;
    for (int32_t i = lane; i < n && !clash; i += kWarp)
      clash = snog_too_close(r, c, acc[2 * i], acc[2 * i + 1], min_dist2);
    if (__any_sync(0xffffffffu, clash)) continue;
    if (lane == 0) {
      acc[2 * n] = r;
      acc[2 * n + 1] = c;
    }
    __syncwarp();  // the new patch is visible to every lane before the next candidate
    ++n;
  }
  if (lane == 0) count[image] = n;
}

}  // namespace

void snog_accept_cuda(const int32_t* candidates, int64_t B, int64_t T, int32_t* accepted,
                      int32_t* count, int64_t P, int64_t patch_size, cudaStream_t stream) {
  if (B == 0 || T == 0 || P == 0) return;
  const int64_t blocks = ceil_div(B, kWarpsPerBlock);
  snog_accept_kernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * kWarp, 0, stream>>>(
      candidates, B, T, accepted, count, static_cast<int32_t>(P), 2 * patch_size * patch_size);
}

}  // namespace gaussocc
