// Deterministic randomness for the phantom generator. Everything is derived from 64-bit integer hashing
// (no std:: distributions, whose output differs between standard libraries), so the same seed gives the
// same bytes on any platform and with any number of threads.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

namespace cspine::synth {

// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline uint64_t hash2(uint64_t a, uint64_t b) {
  return mix64(a ^ mix64(b + 0x632be59bd9b4e019ULL));
}
inline uint64_t hash3(uint64_t a, uint64_t b, uint64_t c) {
  return hash2(hash2(a, b), c);
}

// Uniform in [0, 1) from the top 53 bits.
inline double to_unit(uint64_t x) {
  return static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
}

// A standard normal value that depends only on `key` (Box-Muller on two hashed uniforms).
inline double normal_at(uint64_t key) {
  const double u1 = to_unit(mix64(key)) + 1e-300;
  const double u2 = to_unit(mix64(key ^ 0xd1b54a32d192ed03ULL));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(mix64(seed)) {}
  uint64_t next() { return mix64(state_++); }
  double uniform() { return to_unit(next()); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() { return normal_at(next()); }
  double normal(double mean, double sd) { return mean + sd * normal(); }
  bool chance(double p) { return uniform() < p; }
  int integer(int lo, int hi) {  // inclusive
    return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  template <typename T, std::size_t N>
  const T& pick(const T (&items)[N]) {
    return items[next() % N];
  }

 private:
  uint64_t state_;
};

// A valid DICOM UID under the 2.25 arc (an integer form of a UUID, ISO/IEC 9834-8), derived from a key:
// the same key always gives the same UID, different keys practically never collide, and no organisation
// root is borrowed.
inline std::string derived_uid(uint64_t a, uint64_t b) {
  // A 124-bit number as four 32-bit limbs (most significant first), printed in decimal by long division.
  const uint64_t hi = hash2(a, b) & 0x0fffffffffffffffULL, lo = hash2(b, a ^ 0x5bd1e995ULL);
  uint32_t limb[4] = {static_cast<uint32_t>(hi >> 32), static_cast<uint32_t>(hi), static_cast<uint32_t>(lo >> 32),
                      static_cast<uint32_t>(lo)};
  std::string digits;
  for (;;) {
    uint64_t rem = 0;
    bool zero = true;
    for (uint32_t& l : limb) {
      const uint64_t cur = (rem << 32) | l;
      l = static_cast<uint32_t>(cur / 10);
      rem = cur % 10;
      zero = zero && l == 0;
    }
    digits.insert(digits.begin(), static_cast<char>('0' + rem));
    if (zero) break;
  }
  return "2.25." + digits;
}

}  // namespace cspine::synth
