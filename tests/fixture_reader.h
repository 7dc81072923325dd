#pragma once
// Reads the golden fixtures that scripts/make_fixtures.py computes with PyTorch (the format is documented at the
// top of that script: `tensor <name> <dtype> <rank> <sizes...>` followed by the values, '#' lines are comments).
//
//   auto fixture = hgtest::Fixture::load("attention");  // HG_SOURCE_DIR/tests/fixtures/attention.txt
//   hg::Tensor q = fixture.tensor("q");                  // a CPU tensor of the stored dtype (float64, int64, bool)
#include <map>
#include <string>
#include <vector>

#include <hopgrad/hopgrad.h>

namespace hgtest {

class Fixture {
 public:
  /// Parses tests/fixtures/<name>.txt under the source tree; throws hg::Error naming the file and line of
  /// anything malformed (unknown dtype, too few values, a repeated name, ...).
  static Fixture load(const std::string& name);
  /// Parses fixture text; `origin` names it in errors.
  static Fixture parse(const std::string& text, const std::string& origin);

  const std::string& origin() const { return origin_; }
  bool contains(const std::string& tensor_name) const { return tensors_.count(tensor_name) != 0; }
  /// A fresh copy of the tensor called `tensor_name`, on the CPU in its stored dtype; throws listing the names
  /// the file has.
  hg::Tensor tensor(const std::string& tensor_name) const;
  /// A stored 0-dim hyperparameter, as a double or an integer.
  double number(const std::string& tensor_name) const;
  int64_t integer(const std::string& tensor_name) const;
  /// Every tensor name, in file order.
  const std::vector<std::string>& names() const { return order_; }

 private:
  std::string origin_;
  std::map<std::string, hg::Tensor> tensors_;
  std::vector<std::string> order_;
};

}  // namespace hgtest
