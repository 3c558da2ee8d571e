#pragma once
// GGML tensor types as GGUF files store them: ids, names, block sizes, and the decoding of the supported block
// layouts to float32. Torch-free.
//
// Layouts (ggml's block structs; all little-endian, f16 = IEEE half; a block covers `block_size` consecutive
// values of a row, a row being dims[0] values):
//   Q8_0  (32 values, 34 bytes):  f16 d; int8 q[32]                                x = d * q
//   Q4_0  (32, 18):  f16 d; u8 qs[16]      value j < 16: low nibble of qs[j], j >= 16: high nibble of qs[j - 16]
//                                                                                  x = d * (q - 8)
//   Q4_1  (32, 20):  f16 d, m; u8 qs[16]   (nibbles as Q4_0)                       x = d * q + m
//   Q5_0  (32, 22):  f16 d; u32 qh; u8 qs[16]   q = nibble (as Q4_0) | bit j of qh << 4;   x = d * (q - 16)
//   Q5_1  (32, 24):  f16 d, m; u32 qh; u8 qs[16]                                   x = d * q + m
//   Q4_K  (256, 144): f16 d, dmin; u8 scales[12]; u8 qs[128]. Eight sub-blocks of 32 with 6-bit scale sc[i] and
//         min mn[i] packed in `scales` (i < 4: sc = s[i] & 63, mn = s[i + 4] & 63; i >= 4: sc = (s[i + 4] & 15) |
//         (s[i - 4] >> 6) << 4, mn = (s[i + 4] >> 4) | (s[i] >> 6) << 4). Sub-blocks 2k and 2k+1 take the low and
//         high nibbles of qs[32k .. 32k+31].                                      x = (d * sc) * q - (dmin * mn)
//   Q5_K  (256, 176): f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]. As Q4_K, plus bit i of qh[l] as bit 4 of
//         the value l of sub-block i.
//   Q6_K  (256, 210): u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d. Two halves of 128 values; in half h, value
//         32g + l (g = 0..3, l = 0..31) has low 4 bits from ql[64h + l + 32 (g & 1)] (the low nibble for g < 2,
//         the high one for g >= 2) and high 2 bits (qh[32h + l] >> 2g) & 3; scale scales[8h + 2g + l / 16].
//                                                                                  x = (d * scale) * (q - 32)
// The arithmetic is float32 in the order gguf-py's gguf.quants.dequantize uses, so that the results are
// bit-identical to it (tests/fixtures/gguf). A compiler allowed to contract a * b + c into one fused multiply-add
// (FMA hardware and -ffp-contract=fast, e.g. -march=native with g++'s default GNU mode) may round differently in the
// last bit.

#include <cmath>
#include <cstdint>
#include <cstring>

namespace grpo::detail {

// What a GGML type id means: name, values per block, bytes per block, whether dequantize_blocks decodes it.
struct GgmlTypeTraits {
  uint32_t id;
  const char* name;
  uint64_t block_size;
  uint64_t type_size;
  bool supported;
};

// Every type id ggml defines (ids 4 and 5 were removed from ggml and are unknown here); nullptr for an unknown id.
inline const GgmlTypeTraits* ggml_type_traits(uint32_t id) {
  static const GgmlTypeTraits table[] = {
      {0, "F32", 1, 4, true},          {1, "F16", 1, 2, true},          {2, "Q4_0", 32, 18, true},
      {3, "Q4_1", 32, 20, true},       {6, "Q5_0", 32, 22, true},       {7, "Q5_1", 32, 24, true},
      {8, "Q8_0", 32, 34, true},       {9, "Q8_1", 32, 40, false},      {10, "Q2_K", 256, 84, false},
      {11, "Q3_K", 256, 110, false},   {12, "Q4_K", 256, 144, true},    {13, "Q5_K", 256, 176, true},
      {14, "Q6_K", 256, 210, true},    {15, "Q8_K", 256, 292, false},   {16, "IQ2_XXS", 256, 66, false},
      {17, "IQ2_XS", 256, 74, false},  {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
      {20, "IQ4_NL", 32, 18, false},   {21, "IQ3_S", 256, 110, false},  {22, "IQ2_S", 256, 82, false},
      {23, "IQ4_XS", 256, 136, false}, {24, "I8", 1, 1, false},         {25, "I16", 1, 2, false},
      {26, "I32", 1, 4, false},        {27, "I64", 1, 8, false},        {28, "F64", 1, 8, false},
      {29, "IQ1_M", 256, 56, false},   {30, "BF16", 1, 2, true},        {34, "TQ1_0", 256, 54, false},
      {35, "TQ2_0", 256, 66, false},   {39, "MXFP4", 32, 17, false},
  };
  for (const auto& traits : table) {
    if (traits.id == id) return &traits;
  }
  return nullptr;
}

inline uint16_t read_u16_le(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

inline uint32_t read_u32_le(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

inline float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// IEEE binary16 -> float32, exact (subnormals, infinities and NaN included).
inline float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0x1f) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return float_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return float_from_bits(sign);
  // Subnormal: mantissa * 2^-24; normalise so that bit 10 is the implicit one.
  uint32_t float_exponent = 113;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --float_exponent;
  }
  return float_from_bits(sign | (float_exponent << 23) | ((mantissa & 0x3ffu) << 13));
}

// bfloat16 -> float32: the upper half of a float32.
inline float bf16_to_float(uint16_t bits) { return float_from_bits(static_cast<uint32_t>(bits) << 16); }

inline float f16_at(const unsigned char* p) { return half_to_float(read_u16_le(p)); }

// The 6-bit scale and min of sub-block i (0..7) of a Q4_K / Q5_K block.
inline void k_scale_min(const unsigned char* s, int i, float& scale, float& min) {
  if (i < 4) {
    scale = static_cast<float>(s[i] & 63);
    min = static_cast<float>(s[i + 4] & 63);
  } else {
    scale = static_cast<float>((s[i + 4] & 0x0f) | ((s[i - 4] >> 6) << 4));
    min = static_cast<float>((s[i + 4] >> 4) | ((s[i] >> 6) << 4));
  }
}

// Decodes `blocks` consecutive blocks of the supported type `id` at `src` into blocks * block_size floats at
// `dst`. The caller has checked the type (ggml_type_traits(id)->supported) and the byte count.
inline void dequantize_blocks(uint32_t id, const unsigned char* src, uint64_t blocks, float* dst) {
  switch (id) {
    case 0:  // F32
      for (uint64_t i = 0; i < blocks; ++i) dst[i] = float_from_bits(read_u32_le(src + 4 * i));
      return;
    case 1:  // F16
      for (uint64_t i = 0; i < blocks; ++i) dst[i] = f16_at(src + 2 * i);
      return;
    case 30:  // BF16
      for (uint64_t i = 0; i < blocks; ++i) dst[i] = bf16_to_float(read_u16_le(src + 2 * i));
      return;
    case 8:  // Q8_0
      for (uint64_t b = 0; b < blocks; ++b, src += 34, dst += 32) {
        const float d = f16_at(src);
        for (int j = 0; j < 32; ++j) dst[j] = d * static_cast<float>(static_cast<int8_t>(src[2 + j]));
      }
      return;
    case 2:  // Q4_0
      for (uint64_t b = 0; b < blocks; ++b, src += 18, dst += 32) {
        const float d = f16_at(src);
        const unsigned char* qs = src + 2;
        for (int j = 0; j < 16; ++j) {
          dst[j] = d * static_cast<float>((qs[j] & 0x0f) - 8);
          dst[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
        }
      }
      return;
    case 3:  // Q4_1
      for (uint64_t b = 0; b < blocks; ++b, src += 20, dst += 32) {
        const float d = f16_at(src), m = f16_at(src + 2);
        const unsigned char* qs = src + 4;
        for (int j = 0; j < 16; ++j) {
          dst[j] = d * static_cast<float>(qs[j] & 0x0f) + m;
          dst[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
        }
      }
      return;
    case 6:  // Q5_0
      for (uint64_t b = 0; b < blocks; ++b, src += 22, dst += 32) {
        const float d = f16_at(src);
        const uint32_t qh = read_u32_le(src + 2);
        const unsigned char* qs = src + 6;
        for (int j = 0; j < 16; ++j) {
          const int low = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
          const int high = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
          dst[j] = d * static_cast<float>(low - 16);
          dst[j + 16] = d * static_cast<float>(high - 16);
        }
      }
      return;
    case 7:  // Q5_1
      for (uint64_t b = 0; b < blocks; ++b, src += 24, dst += 32) {
        const float d = f16_at(src), m = f16_at(src + 2);
        const uint32_t qh = read_u32_le(src + 4);
        const unsigned char* qs = src + 8;
        for (int j = 0; j < 16; ++j) {
          const int low = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
          const int high = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
          dst[j] = d * static_cast<float>(low) + m;
          dst[j + 16] = d * static_cast<float>(high) + m;
        }
      }
      return;
    case 12:    // Q4_K
    case 13: {  // Q5_K
      const bool five_bits = id == 13;
      const uint64_t type_size = five_bits ? 176 : 144;
      for (uint64_t b = 0; b < blocks; ++b, src += type_size, dst += 256) {
        const float d = f16_at(src), dmin = f16_at(src + 2);
        const unsigned char* scales = src + 4;
        const unsigned char* qh = src + 16;
        const unsigned char* qs = src + (five_bits ? 48 : 16);
        for (int i = 0; i < 8; ++i) {
          float scale, min;
          k_scale_min(scales, i, scale, min);
          const float step = d * scale, offset = dmin * min;
          const unsigned char* q = qs + 32 * (i / 2);
          const int shift = 4 * (i % 2);
          for (int l = 0; l < 32; ++l) {
            int value = (q[l] >> shift) & 0x0f;
            if (five_bits) value |= ((qh[l] >> i) & 1) << 4;
            dst[32 * i + l] = step * static_cast<float>(value) - offset;
          }
        }
      }
      return;
    }
    case 14:  // Q6_K
      for (uint64_t b = 0; b < blocks; ++b, src += 210, dst += 256) {
        const float d = f16_at(src + 208);
        for (int half = 0; half < 2; ++half) {
          const unsigned char* ql = src + 64 * half;
          const unsigned char* qh = src + 128 + 32 * half;
          const unsigned char* scales = src + 192 + 8 * half;
          for (int g = 0; g < 4; ++g) {
            for (int l = 0; l < 32; ++l) {
              const int low = (ql[l + 32 * (g & 1)] >> (4 * (g >> 1))) & 0x0f;
              const int high = (qh[l] >> (2 * g)) & 3;
              const float step = d * static_cast<float>(static_cast<int8_t>(scales[2 * g + l / 16]));
              dst[128 * half + 32 * g + l] = step * static_cast<float>((low | (high << 4)) - 32);
            }
          }
        }
      }
      return;
    default:
      return;  // unreachable for supported types
  }
}

}  // namespace grpo::detail
