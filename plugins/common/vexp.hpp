// vexp.hpp — exp(x) for float that the compiler vectorises at -O3 with the baseline instruction set
// (no -march, no -ffast-math, no libm call in the loop): Cephes' expf polynomial with round-to-nearest
// done by the 1.5·2^23 trick and 2^n built from the exponent bits. Relative error below 2e-7 for
// x <= 88; exactly 0 below -87 (where exp(x) < 2e-38), so a -inf logit gives probability 0.
// Build with -fno-trapping-math: GCC will not if-convert the float selects otherwise (results are
// unchanged; keel never reads floating-point exception flags).
#pragma once
#include <bit>
#include <cstdint>

namespace keel::math {

inline float vexp(float x) {
  // Plain selects, not std::min/max: those keep NaN ordering rules that block if-conversion.
  float xc = x < -87.0f ? -87.0f : x;
  xc = xc > 88.0f ? 88.0f : xc;
  // n = round(x / ln 2); adding and subtracting 1.5·2^23 rounds to the nearest integer.
  const float magic = 12582912.0f;
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  // r = x - n ln 2, in two parts so that r stays exact.
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : y * scale;
}

}  // namespace keel::math
