#include <hopgrad/core/error.h>

namespace hg::detail {

// User errors read best without a source location; it is appended last so that the message leads.
void throw_error(const char* file, int line, const std::string& message) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  throw Error(fmt::format("{} [{}:{}]", message, base, line));
}

}  // namespace hg::detail
