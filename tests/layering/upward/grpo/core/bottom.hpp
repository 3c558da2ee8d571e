#pragma once
// A header of the lowest layers that includes the top one: check_layering.cmake must reject it.
#include "grpo/train/top.hpp"
