// Accept/reject rule of the SNOG patch sampler (ViPOcc Eq. 6), shared by the CPU and CUDA kernels.
// Patches are l x l squares on the pixel grid, given by their integer top-left (row, col).
// A candidate is rejected when its centre lies at squared distance < 2 l^2 from an accepted
// patch's centre; centre distances equal top-left distances, so the test is exact in integers.
#pragma once

#include <cstdint>

#include "gaussocc/common.h"

namespace gaussocc {

// True when the patches with top-left corners (r0, c0) and (r1, c1) are too close.
GO_HD bool snog_too_close(int32_t r0, int32_t c0, int32_t r1, int32_t c1, int64_t min_dist2) {
  const int64_t dr = static_cast<int64_t>(r0) - r1;
  const int64_t dc = static_cast<int64_t>(c0) - c1;
  return dr * dr + dc * dc < min_dist2;
}

// Visits the candidates [T, 2] of one image in order and appends every candidate that keeps its
// distance to all accepted patches to accepted [P, 2], until P patches are accepted. Candidates
// with a negative row are skipped (they fell outside the image). Returns the new count.
GO_HD int32_t snog_accept_image(const int32_t* candidates, int64_t T, int32_t* accepted,
                                int32_t count, int32_t P, int64_t min_dist2) {
  for (int64_t t = 0; t < T && count < P; ++t) {
    const int32_t r = candidates[2 * t];
    const int32_t c = candidates[2 * t + 1];
    if (r < 0) continue;
    bool clash = false;
    for (int32_t i = 0; i < count && !clash; ++i)
      clash = snog_too_close(r, c, accepted[2 * i], accepted[2 * i + 1], min_dist2);
    if (clash) continue;
    accepted[2 * count] = r;
    accepted[2 * count + 1] = c;
    ++count;
  }
  return count;
}

}  // namespace gaussocc
