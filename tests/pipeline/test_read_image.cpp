// read_image: PNG modes come out as PIL's convert("RGB") makes them (RGBA and grey+alpha lose their alpha,
// grey is replicated, palettes are looked up), and hostile files are one-line errors naming the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "kakusan/image.h"
#include "kakusan/pipeline.h"
#include "../io/scratch_dir.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
const fs::path kGoldens = fs::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";

TEST(ReadImage, ModesMatchPilConvertRgb) {
  const SafetensorsFile want = SafetensorsFile::open(kGoldens / "modes.safetensors");
  for (const char* mode : {"rgba", "grey", "grey_alpha", "palette"}) {
    SCOPED_TRACE(mode);
    const Image image = read_image(kGoldens / (std::string("mode_") + mode + ".png"));
    const TensorView pixels = want.view(mode);
    ASSERT_EQ(image.height, pixels.dim(0));
    ASSERT_EQ(image.width, pixels.dim(1));
    for (size_t i = 0; i < image.rgb.size(); ++i) ASSERT_EQ(float(image.rgb[i]), pixels.f32()[i]) << "value " << i;
  }
}

std::string error_of(const fs::path& path) {
  try {
    read_image(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ReadImage, HostileFilesAreOneLineErrors) {
  testing::ScratchDir dir;
  const std::string good = [] {
    std::ifstream in(kGoldens / "input_64x64.png", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  const auto write = [&](const char* name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };
  std::string wide_header = good.substr(0, 33);  // signature + IHDR: width 100000 (CRC now wrong: refused too)
  wide_header[16] = 0, wide_header[17] = 1, wide_header[18] = char(0x86), wide_header[19] = char(0xa0);
  const fs::path cases[] = {
      dir / "missing.png",
      write("empty.png", ""),
      write("text.png", "not a png at all"),
      write("truncated.png", good.substr(0, good.size() / 2)),
      write("header_only.png", good.substr(0, 33)),
      write("wide.png", wide_header + good.substr(33)),
  };
  for (const fs::path& path : cases) {
    const std::string message = error_of(path);
    EXPECT_NE(message.find(path.filename().string()), std::string::npos) << path << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  // Larger than the pipeline accepts: refused from the header (a 9000-pixel-wide image is 216 KB).
  write_png(dir / "huge.png", Image{kMaxImageSide + 8, 8, std::vector<uint8_t>(size_t(kMaxImageSide + 8) * 8 * 3)});
  EXPECT_NE(error_of(dir / "huge.png"), "");
  EXPECT_NO_THROW(read_png(dir / "huge.png"));  // the general reader's limit is larger
}

}  // namespace
}  // namespace kakusan
