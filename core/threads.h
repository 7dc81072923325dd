#pragma once
// The number of CPU threads hopgrad's kernels use (OpenMP loops and oneDNN primitives), as
// torch.set_num_threads / torch.get_num_threads. It is per calling thread, as OpenMP's setting is.

namespace hg {

/// Use `n` threads (n ≥ 1) for the CPU kernels called from this thread; throws hg::Error otherwise.
void set_num_threads(int n);
/// The number of threads the CPU kernels called from this thread use.
int get_num_threads();

}  // namespace hg
