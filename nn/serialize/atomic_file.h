#pragma once
// AtomicFile: a file that appears at its path complete or not at all. Bytes go to `<path>.tmp.<pid>` in the
// same directory; commit() fsyncs it, renames it over `path` and fsyncs the directory. A crash or an error
// before the rename leaves whatever was at `path` untouched (a crash may leave the temporary file behind;
// the next save from a process with the same pid overwrites it).
//
//   hg::serialize::AtomicFile file("run/checkpoint.safetensors");
//   file.write(header.data(), header.size());
//   file.write(payload.data(), payload.size());
//   file.commit();   // without commit(), the destructor deletes the temporary file
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>

namespace hg::serialize {

class AtomicFile {
 public:
  /// Creates (or truncates) `<path>.tmp.<pid>`. Throws when it cannot be created, or when this process is
  /// already writing `path` (two writers would interleave their bytes in the one temporary file).
  explicit AtomicFile(std::filesystem::path path);
  /// Without commit(): closes and deletes the temporary file; `path` is untouched.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Appends `size` bytes (retrying short writes); throws naming the file on any I/O error (a full disk...).
  void write(const void* data, size_t size);
  /// fsync, close, rename over path(), fsync the directory: afterwards path() holds exactly the bytes
  /// written, durably. Nothing may be written after it. Also deletes the temporary files of `path` that writers
  /// killed before their commit left behind (those whose process is gone).
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }
  uint64_t bytes_written() const { return written_; }

 private:
  void discard() noexcept;

  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  std::filesystem::path in_flight_key_;  ///< absolute temp_path_, registered while this file is being written
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

namespace detail {
/// Called by AtomicFile::write before each write with the temporary file, the bytes already written and the
/// size of the write about to happen. Tests install one to simulate a crash mid-save (throw, or end the
/// process with _exit). Per thread; none by default.
using WriteHook = std::function<void(const std::filesystem::path& temp_path, uint64_t written, size_t size)>;

/// Installs `hook` on this thread for its scope (restoring the previous one).
class ScopedWriteHook {
 public:
  explicit ScopedWriteHook(WriteHook hook);
  ~ScopedWriteHook();
  ScopedWriteHook(const ScopedWriteHook&) = delete;
  ScopedWriteHook& operator=(const ScopedWriteHook&) = delete;

 private:
  WriteHook previous_;
};
}  // namespace detail

}  // namespace hg::serialize
