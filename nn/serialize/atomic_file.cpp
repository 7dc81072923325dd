// AtomicFile: temporary file, fsync, rename, fsync of the directory (see atomic_file.h).
#include <hopgrad/nn/serialize/atomic_file.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <hopgrad/core/error.h>

namespace hg::serialize {

namespace fs = std::filesystem;

namespace {

thread_local detail::WriteHook write_hook;

// Temporary files being written by this process. The name holds only the pid, so two writers of one path in
// one process would share it; the second is refused instead.
std::mutex in_flight_mutex;
std::set<fs::path> in_flight;

std::string os_error() { return std::strerror(errno); }

// Deletes the temporary files `<path>.tmp.<pid>` that writers of `path` killed before their commit left behind —
// those whose process no longer exists (kill(pid, 0) fails with ESRCH). Best effort: errors are ignored.
void remove_abandoned_temporaries(const fs::path& path) {
  const fs::path directory = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const std::string prefix = path.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid == ::getpid() || pid <= 0) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) fs::remove(it->path(), ec);
  }
}

}  // namespace

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)) {
  HG_CHECK(!path_.empty() && path_.has_filename(), "AtomicFile: '{}' is not a file path", path_.string());
  temp_path_ = path_;
  temp_path_ += ".tmp." + std::to_string(::getpid());
  // Normalised, so that "x", "./x" and "d/../x" (one file) are one key.
  in_flight_key_ = fs::absolute(temp_path_).lexically_normal();
  {
    std::lock_guard lock(in_flight_mutex);
    HG_CHECK(in_flight.insert(in_flight_key_).second,
             "AtomicFile: '{}' is already being written by this process (through '{}'); concurrent saves to one "
             "path would interleave their bytes",
             path_.string(), temp_path_.string());
  }
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const std::string why = os_error();
    discard();
    HG_FAIL("AtomicFile: cannot create '{}' (the temporary file for '{}'): {}", temp_path_.string(), path_.string(),
            why);
  }
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

// Closes and deletes the temporary file (when still open) and releases the path for other writers.
void AtomicFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
    fd_ = -1;
  }
  std::lock_guard lock(in_flight_mutex);
  in_flight.erase(in_flight_key_);
}

void AtomicFile::write(const void* data, size_t size) {
  HG_CHECK(fd_ >= 0, "AtomicFile: writing '{}' after commit()", path_.string());
  if (write_hook) write_hook(temp_path_, written_, size);
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, bytes, size);
    if (n < 0 && errno == EINTR) continue;
    HG_CHECK(n > 0, "AtomicFile: writing '{}' failed after {} bytes: {} ('{}' is unchanged)", temp_path_.string(),
             written_, n < 0 ? os_error() : "no progress", path_.string());
    bytes += n;
    size -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFile::commit() {
  HG_CHECK(fd_ >= 0, "AtomicFile: '{}' was already committed", path_.string());
  // The data must be on disk before the rename is: otherwise a crash could leave the new name on an empty or
  // partial file (the "zero-length file after power loss" failure of rename without fsync).
  HG_CHECK(::fsync(fd_) == 0, "AtomicFile: fsync of '{}' failed: {} ('{}' is unchanged)", temp_path_.string(),
           os_error(), path_.string());
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) {
    const std::string why = os_error();
    ::unlink(temp_path_.c_str());
    HG_FAIL("AtomicFile: closing '{}' failed: {} ('{}' is unchanged)", temp_path_.string(), why, path_.string());
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const std::string why = os_error();
    ::unlink(temp_path_.c_str());
    HG_FAIL("AtomicFile: renaming '{}' to '{}' failed: {}", temp_path_.string(), path_.string(), why);
  }
  committed_ = true;
  {
    std::lock_guard lock(in_flight_mutex);
    in_flight.erase(in_flight_key_);
  }
  // The rename itself lives in the directory: fsync it so that the new entry survives a power loss.
  const fs::path directory = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  HG_CHECK(dir_fd >= 0, "AtomicFile: cannot open directory '{}' to fsync the rename of '{}': {}", directory.string(),
           path_.string(), os_error());
  const int rc = ::fsync(dir_fd);
  const int fsync_errno = errno;
  ::close(dir_fd);
  // Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as they make it.
  HG_CHECK(rc == 0 || fsync_errno == EINVAL, "AtomicFile: fsync of directory '{}' after writing '{}' failed: {}",
           directory.string(), path_.string(), std::strerror(fsync_errno));
  remove_abandoned_temporaries(path_);
}

namespace detail {
ScopedWriteHook::ScopedWriteHook(WriteHook hook) : previous_(std::exchange(write_hook, std::move(hook))) {}
ScopedWriteHook::~ScopedWriteHook() { write_hook = std::move(previous_); }
}  // namespace detail

}  // namespace hg::serialize
