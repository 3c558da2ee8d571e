#pragma once
// The lowest folder including grpo/error.hpp, which sits below every folder: check_layering.cmake must accept it.
#include "grpo/error.hpp"
