#include "fixture_reader.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <string_view>

#include <fmt/ranges.h>

namespace hgtest {
namespace {

struct Token {
  std::string_view text;
  int line;
};

/// Whitespace-separated tokens with their line numbers; '#' lines are comments.
std::vector<Token> tokenize(const std::string& text) {
  std::vector<Token> tokens;
  int line = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string_view row(text.data() + start, end - start);
    ++line;
    if (!row.starts_with('#')) {
      for (size_t i = 0; i < row.size();) {
        size_t begin = row.find_first_not_of(" \t\r", i);
        if (begin == std::string_view::npos) break;
        size_t stop = std::min(row.find_first_of(" \t\r", begin), row.size());
        tokens.push_back({row.substr(begin, stop - begin), line});
        i = stop;
      }
    }
    start = end + 1;
  }
  return tokens;
}

class TokenStream {
 public:
  TokenStream(std::vector<Token> tokens, std::string origin) : tokens_(std::move(tokens)), origin_(std::move(origin)) {}
  bool done() const { return next_ == tokens_.size(); }

  const Token& next(std::string_view what) {
    HG_CHECK(!done(), "golden fixture {}: the file ends where {} was expected", origin_, what);
    return tokens_[next_++];
  }

  /// The next token as a T (from_chars: exact for the shortest round-trip decimals the script writes).
  template <typename T> T number(std::string_view what) {
    const Token& token = next(what);
    T value{};
    const char* end = token.text.data() + token.text.size();
    auto [ptr, ec] = std::from_chars(token.text.data(), end, value);
    HG_CHECK(ec == std::errc() && ptr == end, "golden fixture {}:{}: expected {}, got '{}'", origin_, token.line,
             what, token.text);
    return value;
  }

  /// Line of the token read last.
  int line() const { return next_ == 0 ? 0 : tokens_[next_ - 1].line; }

 private:
  std::vector<Token> tokens_;
  size_t next_ = 0;
  std::string origin_;
};

/// Reads the values of one tensor of `sizes` and dtype `dtype_name` from the stream.
hg::Tensor read_values(TokenStream& in, std::string_view dtype_name, const std::vector<int64_t>& sizes,
                       const std::string& what, const std::string& origin, int line) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  auto count = static_cast<size_t>(numel);
  if (dtype_name == "float64") {
    std::vector<double> values(count);
    for (auto& v : values) v = in.number<double>(what);
    return hg::from_vector(values, sizes, hg::kFloat64);
  }
  if (dtype_name == "int64") {
    std::vector<int64_t> values(count);
    for (auto& v : values) v = in.number<int64_t>(what);
    return hg::from_vector(values, sizes, hg::kInt64);
  }
  if (dtype_name == "bool") {
    std::vector<bool> values(count);
    for (size_t i = 0; i < count; ++i) {
      auto v = in.number<int>(what);
      HG_CHECK(v == 0 || v == 1, "golden fixture {}:{}: bool values are 0 or 1, got {} in {}", origin, in.line(), v,
               what);
      values[i] = v == 1;
    }
    return hg::from_vector(values, sizes, hg::kBool);
  }
  HG_FAIL("golden fixture {}:{}: unknown dtype '{}' (expected float64, int64 or bool)", origin, line, dtype_name);
}

}  // namespace

Fixture Fixture::load(const std::string& name) {
  std::string path = std::string(HG_SOURCE_DIR) + "/tests/fixtures/" + name + ".txt";
  std::ifstream file(path);
  HG_CHECK(file.good(), "golden fixture {}: cannot open it (written by scripts/make_fixtures.py)", path);
  std::ostringstream text;
  text << file.rdbuf();
  return parse(text.str(), path);
}

Fixture Fixture::parse(const std::string& text, const std::string& origin) {
  Fixture fixture;
  fixture.origin_ = origin;
  TokenStream in(tokenize(text), fixture.origin_);
  while (!in.done()) {
    const Token& keyword = in.next("'tensor'");
    HG_CHECK(keyword.text == "tensor", "golden fixture {}:{}: expected 'tensor', got '{}'", origin, keyword.line,
             keyword.text);
    std::string name(in.next("a tensor name").text);
    HG_CHECK(!fixture.contains(name), "golden fixture {}:{}: tensor '{}' appears twice", origin, keyword.line, name);
    std::string_view dtype_name = in.next("a dtype").text;
    auto rank = in.number<int64_t>("a rank");
    HG_CHECK(rank >= 0 && rank <= hg::kMaxDims, "golden fixture {}:{}: tensor '{}' has rank {}, expected 0..{}",
             origin, keyword.line, name, rank, hg::kMaxDims);
    std::vector<int64_t> sizes(static_cast<size_t>(rank));
    for (auto& s : sizes) {
      s = in.number<int64_t>("a size");
      HG_CHECK(s >= 0, "golden fixture {}:{}: tensor '{}' has a negative size {}", origin, keyword.line, name, s);
    }
    fixture.tensors_[name] = read_values(in, dtype_name, sizes, "a value of '" + name + "'", origin, keyword.line);
    fixture.order_.push_back(name);
  }
  return fixture;
}

hg::Tensor Fixture::tensor(const std::string& tensor_name) const {
  auto it = tensors_.find(tensor_name);
  HG_CHECK(it != tensors_.end(), "golden fixture {}: no tensor '{}'; it has {}", origin_, tensor_name,
           fmt::join(order_, ", "));
  return it->second.clone();  // a copy, so a test that updates its inputs in place leaves the fixture intact
}

double Fixture::number(const std::string& tensor_name) const {
  hg::Tensor t = tensor(tensor_name);
  HG_CHECK(t.dim() == 0 && t.dtype() == hg::kFloat64, "golden fixture {}: '{}' is {}, expected a 0-dim float64",
           origin_, tensor_name, t.desc());
  return t.item<double>();
}

int64_t Fixture::integer(const std::string& tensor_name) const {
  hg::Tensor t = tensor(tensor_name);
  HG_CHECK(t.dim() == 0 && t.dtype() == hg::kInt64, "golden fixture {}: '{}' is {}, expected a 0-dim int64",
           origin_, tensor_name, t.desc());
  return t.item<int64_t>();
}

}  // namespace hgtest
