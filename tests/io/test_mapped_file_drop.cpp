// MappedFile::drop_range: releasing the pages of one tensor keeps every byte readable (faulted back from the
// file) and ignores ranges outside the mapping.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "io/mapped_file.h"
#include "io/scratch_dir.h"

namespace kakusan {
namespace {

TEST(MappedFileDrop, DroppedPagesReadBackTheFile) {
  const testing::ScratchDir dir;
  std::string bytes(5 * 4096 + 123, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 131 % 251);
  std::ofstream(dir / "f.bin", std::ios::binary) << bytes;
  const auto file = MappedFile::open(dir / "f.bin");
  const std::string before(reinterpret_cast<const char*>(file->data()), file->size());
  ASSERT_EQ(before, bytes);
  file->drop_range(file->data() + 100, 3 * 4096);         // an unaligned range inside: its whole pages
  file->drop_range(file->data() + 4096, file->size());    // runs past the end: ignored
  file->drop_range(bytes.data(), 10);                     // another buffer: ignored
  file->drop_range(file->data(), 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->data()), file->size()), bytes);
  const auto image = MappedFile::from_bytes(bytes, "image");  // not a mapping: nothing to drop
  image->drop_range(image->data(), image->size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(image->data()), image->size()), bytes);
}

}  // namespace
}  // namespace kakusan
