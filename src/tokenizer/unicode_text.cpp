#include "tokenizer/unicode_text.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include "core/error.h"

namespace kakusan::unicode {

namespace {

icu::UnicodeString to_icu(std::u32string_view text) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()), int32_t(text.size()));
}

std::u32string from_icu(const icu::UnicodeString& text) {
  std::u32string out;
  out.reserve(size_t(text.length()));
  for (int32_t i = 0; i < text.length();) {
    const UChar32 c = text.char32At(i);
    out.push_back(char32_t(c));
    i += U16_LENGTH(c);
  }
  return out;
}

uint32_t category_mask(char32_t c) { return U_GET_GC_MASK(UChar32(c)); }

// The reference (Python 3.11's unicodedata) knows Unicode 14.0; characters ICU knows from a later version
// are unassigned (category Cn) there.
constexpr uint8_t kReferenceUnicodeMajor = 14;

bool newer_than_reference(char32_t c) {
  UVersionInfo age;
  u_charAge(UChar32(c), age);
  return age[0] > kReferenceUnicodeMajor;
}

}  // namespace

std::u32string decode_utf8(std::string_view bytes, std::string_view what) {
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const int32_t length = int32_t(bytes.size());
  KK_CHECK(bytes.size() <= size_t(INT32_MAX), what, ": text too long (", bytes.size(), " bytes)");
  std::u32string out;
  out.reserve(bytes.size());
  for (int32_t i = 0; i < length;) {
    const int32_t start = i;
    UChar32 c;
    U8_NEXT(s, i, length, c);
    KK_CHECK(c >= 0, what, ": not valid UTF-8 (bad byte 0x", std::hex, int(s[start]), std::dec, " at offset ", start,
             ")");
    out.push_back(char32_t(c));
  }
  return out;
}

std::u32string decode_utf8_lossy(std::string_view bytes) {
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const int32_t length = int32_t(bytes.size());
  std::u32string out;
  out.reserve(bytes.size());
  for (int32_t i = 0; i < length;) {
    UChar32 c;
    // Since ICU 60 this consumes one maximal subpart of an ill-formed sequence per U+FFFD, as Python does.
    U8_NEXT_OR_FFFD(s, i, length, c);
    out.push_back(char32_t(c));
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

bool is_letter(char32_t c) { return (category_mask(c) & U_GC_L_MASK) != 0; }
bool is_number(char32_t c) { return (category_mask(c) & U_GC_N_MASK) != 0; }
bool is_other(char32_t c) { return (category_mask(c) & U_GC_C_MASK) != 0 || newer_than_reference(c); }
bool is_space_separator(char32_t c) { return (category_mask(c) & U_GC_ZS_MASK) != 0; }

bool is_python_space(char32_t c) {
  if (is_space_separator(c)) return true;
  const UCharDirection direction = u_charDirection(UChar32(c));
  return direction == U_WHITE_SPACE_NEUTRAL || direction == U_BLOCK_SEPARATOR || direction == U_SEGMENT_SEPARATOR;
}

std::u32string nfc(std::u32string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = icu::Normalizer2::getNFCInstance(status);
  KK_CHECK(U_SUCCESS(status), "ICU: cannot load the NFC normaliser (", u_errorName(status), ")");
  const icu::UnicodeString normalized = normalizer->normalize(to_icu(text), status);
  KK_CHECK(U_SUCCESS(status), "ICU: NFC normalisation failed (", u_errorName(status), ")");
  return from_icu(normalized);
}

std::u32string to_lower(std::u32string_view text) {
  icu::UnicodeString s = to_icu(text);
  // The root locale gives the language-neutral full mapping that Python's str.lower() uses.
  s.toLower(icu::Locale::getRoot());
  return from_icu(s);
}

}  // namespace kakusan::unicode
