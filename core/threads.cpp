#include <hopgrad/core/threads.h>

#include <omp.h>

#include <hopgrad/core/error.h>

namespace hg {

void set_num_threads(int n) {
  HG_CHECK(n >= 1, "set_num_threads: expected a thread count of at least 1, got {}", n);
  omp_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace hg
