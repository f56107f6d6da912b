// read_image and decode_image (include/kakusan/image.h): input pictures through the PNG reader, refused before decompression
// when larger than the pipeline accepts (a small file can declare a huge image).
#include "io/png.h"
#include "kakusan/image.h"
#include "kakusan/pipeline.h"

namespace kakusan {

Image read_image(const std::filesystem::path& path) { return read_png(path, uint32_t(kMaxImageSide)).image; }

Image decode_image(std::string_view png, const std::string& label) {
  return decode_png(png, label, uint32_t(kMaxImageSide)).image;
}

}  // namespace kakusan
