#include "common.h"

namespace glimpse {

void register_elementwise(napi_env env, napi_value exports) {}

}  // namespace glimpse
