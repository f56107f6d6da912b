#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"

namespace kakusan {

AtomicFile::AtomicFile(const std::filesystem::path& target) : target_(target) {
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  std::string leaf = ".";
  leaf += target.filename().string();
  leaf += ".tmp-XXXXXX";
  std::string templ = (dir / leaf).string();
  const int fd = ::mkstemp(templ.data());
  if (fd < 0) fail(target.string(), ": cannot create a temporary file: ", std::strerror(errno));
  temp_ = templ;
  file_ = ::fdopen(fd, "wb");
  if (file_ == nullptr) {
    ::close(fd);
    std::filesystem::remove(temp_);
    fail(target.string(), ": cannot open a temporary file for writing");
  }
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) {
    std::error_code ignored;
    std::filesystem::remove(temp_, ignored);
  }
}

void AtomicFile::write(const void* data, size_t size) {
  if (size != 0 && std::fwrite(data, 1, size, file_) != size)
    fail(target_.string(), ": write failed: ", std::strerror(errno));
}

void AtomicFile::commit() {
  const bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed) fail(target_.string(), ": write failed: ", std::strerror(errno));
  std::error_code ec;
  std::filesystem::permissions(temp_, std::filesystem::perms(0644), ec);
  std::filesystem::rename(temp_, target_, ec);
  if (ec) fail(target_.string(), ": cannot move the finished file into place: ", ec.message());
  committed_ = true;
}

}  // namespace kakusan
