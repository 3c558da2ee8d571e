#pragma once
// The top layer (see core/bottom.hpp).
