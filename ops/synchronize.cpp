// hg::synchronize (declared in core/device.h): the device's backend waits for its queue.
#include <hopgrad/core/device.h>

#include <hopgrad/ops/backend.h>

namespace hg {

void synchronize(Device device) { backend_for(device).synchronize(); }

}  // namespace hg
