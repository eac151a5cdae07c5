// Helpers shared by every CPU and CUDA kernel. No torch headers: included from .cu files.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define GO_HD __host__ __device__ __forceinline__
#define GO_DEVICE __device__ __forceinline__
#else
#define GO_HD inline
#endif

namespace gaussocc {

// Integer ceil division for positive values.
GO_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T>
GO_HD T clamp_value(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

#if !defined(__CUDACC__)
// Lock-free atomic add on the host for float and double (compare-and-swap on the bit pattern).
template <typename T>
inline void atomic_add_host(T* address, T value) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomic_add_host: float or double");
  using Bits = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  Bits* raw = reinterpret_cast<Bits*>(address);
  Bits expected = __atomic_load_n(raw, __ATOMIC_RELAXED);
  while (true) {
    T current;
    __builtin_memcpy(&current, &expected, sizeof(T));
    T next_value = current + value;
    Bits desired;
    __builtin_memcpy(&desired, &next_value, sizeof(T));
    if (__atomic_compare_exchange_n(raw, &expected, desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      return;
  }
}
#endif

}  // namespace gaussocc
