#pragma once
// grpo/error.hpp is the bottom layer and may include no other grpo header: check_layering.cmake must reject this.
#include "grpo/core/bottom.hpp"
