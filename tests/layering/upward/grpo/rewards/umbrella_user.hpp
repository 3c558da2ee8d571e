#pragma once
// The umbrella header stands outside the layers: check_layering.cmake must reject a layered header including it.
#include "grpo/grpo.hpp"
