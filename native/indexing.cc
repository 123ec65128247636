#include "common.h"

namespace glimpse {

void register_indexing(napi_env env, napi_value exports) {}

}  // namespace glimpse
