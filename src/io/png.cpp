#include "io/png.h"

#include <png.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"

namespace kakusan {

namespace {

// libpng reports errors by longjmp; the message is kept here so the C++ side can throw it.
struct PngError {
  char message[256] = "unknown libpng error";
};

void on_error(png_structp png, png_const_charp message) {
  auto* error = static_cast<PngError*>(png_get_error_ptr(png));
  std::snprintf(error->message, sizeof error->message, "%s", message);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

// The setjmp frames below hold no C++ objects with destructors, so a longjmp out of libpng skips nothing.
bool write_stream(FILE* file, const Image& image, png_text* chunks, int num_chunks, png_bytep* rows,
                  PngError* error) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, error, on_error, on_warning);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (num_chunks > 0) png_set_text(png, info, chunks, num_chunks);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

struct ReadState {
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngError error;
};

bool read_stream(FILE* file, ReadState* state, uint32_t max_side) {
  state->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state->error, on_error, on_warning);
  if (state->png == nullptr) return false;
  state->info = png_create_info_struct(state->png);
  if (state->info == nullptr) return false;
  if (setjmp(png_jmpbuf(state->png))) return false;
  png_init_io(state->png, file);
  png_set_user_limits(state->png, max_side, max_side);  // refuse absurd sizes before allocating
  png_read_png(state->png, state->info,
               PNG_TRANSFORM_EXPAND | PNG_TRANSFORM_STRIP_16 | PNG_TRANSFORM_STRIP_ALPHA | PNG_TRANSFORM_GRAY_TO_RGB,
               nullptr);
  return true;
}

bool is_ascii_text(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

void check_keyword(const std::filesystem::path& path, const std::string& key, const std::string& value) {
  bool printable = !key.empty() && key.size() <= 79 && key.front() != ' ' && key.back() != ' ';
  for (unsigned char c : key) printable = printable && c >= 32 && c <= 126;
  KK_CHECK(printable, path.string(), ": PNG text keyword '", key, "' must be 1-79 printable ASCII characters");
  KK_CHECK(value.find('\0') == std::string::npos, path.string(), ": PNG text '", key, "' contains a NUL byte");
}

std::string format_number(double v) {
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

}  // namespace

std::string format_parameters(const GenerationInfo& info) {
  std::string out = info.prompt;
  if (!info.negative_prompt.empty()) out += "\nNegative prompt: " + info.negative_prompt;
  out += str_cat("\nSteps: ", info.steps, ", Sampler: ", info.sampler, ", CFG scale: ", format_number(info.cfg_scale),
                 ", Seed: ", info.seed, ", Size: ", info.width, "x", info.height);
  if (!info.model.empty()) out += ", Model: " + info.model;
  for (const auto& [key, value] : info.extra) out += ", " + key + ": " + value;
  return out;
}

namespace {

// Checks `image` and `text` (errors name `label`), then writes the PNG stream to `file`.
void write_png_stream(FILE* file, const std::filesystem::path& label, const Image& image, const PngText& text) {
  const std::filesystem::path& path = label;
  KK_CHECK(image.width > 0 && image.height > 0 && image.width <= 1 << 16 && image.height <= 1 << 16, path.string(),
           ": cannot write a ", image.width, "x", image.height, " image");
  const size_t row_bytes = size_t(image.width) * 3;
  KK_CHECK(image.rgb.size() == row_bytes * size_t(image.height), path.string(), ": image has ", image.rgb.size(),
           " bytes, expected ", row_bytes * size_t(image.height), " for ", image.width, "x", image.height, " RGB");
  std::vector<png_text> chunks(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto& [key, value] = text[i];
    check_keyword(path, key, value);
    png_text& chunk = chunks[i];
    std::memset(&chunk, 0, sizeof chunk);
    // tEXt is Latin-1; UTF-8 beyond ASCII goes into an iTXt chunk so that it survives unchanged.
    chunk.compression = is_ascii_text(value) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    chunk.key = const_cast<char*>(key.c_str());
    chunk.text = const_cast<char*>(value.c_str());
    chunk.text_length = chunk.compression == PNG_TEXT_COMPRESSION_NONE ? value.size() : 0;
    chunk.itxt_length = chunk.compression == PNG_TEXT_COMPRESSION_NONE ? 0 : value.size();
  }
  std::vector<png_bytep> rows(size_t(image.height));
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = const_cast<png_bytep>(image.rgb.data() + y * row_bytes);

  PngError error;
  if (!write_stream(file, image, chunks.data(), int(chunks.size()), rows.data(), &error))
    fail(path.string(), ": cannot write PNG: ", error.message);
}

}  // namespace

void write_png(const std::filesystem::path& path, const Image& image, const PngText& text) {
  AtomicFile out(path);
  write_png_stream(out.stream(), path, image, text);
  out.commit();
}

std::string encode_png(const Image& image, const PngText& text) {
  char* buffer = nullptr;
  size_t size = 0;
  FILE* memory = open_memstream(&buffer, &size);
  KK_CHECK(memory != nullptr, "PNG in memory: cannot open a memory stream");
  try {
    write_png_stream(memory, "PNG in memory", image, text);
  } catch (...) {
    std::fclose(memory);
    std::free(buffer);
    throw;
  }
  std::fclose(memory);  // flushes: buffer and size are final only now
  std::string bytes(buffer, size);
  std::free(buffer);
  return bytes;
}

namespace {

// Decodes the PNG stream in `file` (closed here); errors name `label`.
PngContents read_png_stream(FILE* file, const std::string& label, uint32_t max_side) {
  ReadState state;
  const bool ok = read_stream(file, &state, max_side);
  std::fclose(file);
  PngContents contents;
  std::string problem;
  if (ok && png_get_channels(state.png, state.info) == 3 && png_get_bit_depth(state.png, state.info) == 8) {
    const png_uint_32 width = png_get_image_width(state.png, state.info);
    const png_uint_32 height = png_get_image_height(state.png, state.info);
    png_bytepp rows = png_get_rows(state.png, state.info);
    contents.image.width = int(width);
    contents.image.height = int(height);
    contents.image.rgb.resize(size_t(width) * height * 3);
    for (png_uint_32 y = 0; y < height; ++y)
      std::memcpy(&contents.image.rgb[size_t(y) * width * 3], rows[y], size_t(width) * 3);
    png_textp chunks = nullptr;
    const int n = png_get_text(state.png, state.info, &chunks, nullptr);
    for (int i = 0; i < n; ++i) {
      const size_t length = chunks[i].compression > 0 ? chunks[i].itxt_length : chunks[i].text_length;
      contents.text.emplace_back(chunks[i].key, std::string(chunks[i].text, length));
    }
  } else {
    problem = ok ? "unexpected pixel layout after conversion to RGB8" : state.error.message;
  }
  png_destroy_read_struct(state.png ? &state.png : nullptr, state.info ? &state.info : nullptr, nullptr);
  if (!problem.empty()) fail(label, ": not a readable PNG: ", problem);
  return contents;
}

}  // namespace

PngContents read_png(const std::filesystem::path& path, uint32_t max_side) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) fail(path.string(), ": cannot open: ", std::strerror(errno));
  return read_png_stream(file, path.string(), max_side);
}

PngContents decode_png(std::string_view bytes, const std::string& label, uint32_t max_side) {
  // fmemopen refuses a zero-length buffer; an empty body is simply not a PNG.
  if (bytes.empty()) fail(label, ": not a readable PNG: no data");
  FILE* file = fmemopen(const_cast<char*>(bytes.data()), bytes.size(), "rb");
  if (file == nullptr) fail(label, ": cannot open a memory stream: ", std::strerror(errno));
  return read_png_stream(file, label, max_side);
}

}  // namespace kakusan
