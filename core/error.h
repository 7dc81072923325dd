#pragma once
// Errors: every user-facing failure is an hg::Error that names the op, what it got and what it expected.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace hg {

/// The one exception type hopgrad throws for bad input, bad state and failed backend calls.
/// Example: `try { hg::matmul(a, b); } catch (const hg::Error& e) { fmt::print("{}\n", e.what()); }`
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace hg

/// HG_CHECK(cond, "fmt {}", args...): throws hg::Error with the formatted message when cond is false.
#define HG_CHECK(cond, ...)                                                      \
  do {                                                                           \
    if (!(cond)) [[unlikely]] {                                                  \
      ::hg::detail::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__)); \
    }                                                                            \
  } while (0)

/// HG_FAIL("fmt {}", args...): throws hg::Error unconditionally.
#define HG_FAIL(...) ::hg::detail::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))
