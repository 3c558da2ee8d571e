# grpo_add_reward_plugin(<target> SOURCES <files>...): a reward plugin for grpo-train, a shared library (CMake
# MODULE, lib<target>.so) built from sources that define factories with GRPO_REWARD_PLUGIN (grpo/rewards/plugin.hpp).
# Only the factories are exported. Available after find_package(grpo) and in a build that add_subdirectory()s
# grpo-cpp. A run file then names it: {"type": "plugin", "library": "path/lib<target>.so", "factory": "..."}.
function(grpo_add_reward_plugin target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "SOURCES")
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "grpo_add_reward_plugin(${target}): give the plugin's SOURCES")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE grpo::core)
  set_target_properties(${target} PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
                                             POSITION_INDEPENDENT_CODE ON)
endfunction()
