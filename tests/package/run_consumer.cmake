# Builds and runs tests/package/consumer against grpo-cpp, either installed to a temporary prefix
# (MODE=find_package) or included with add_subdirectory (MODE=add_subdirectory), against the LibTorch of the
# calling build (TORCH_DIR, CAFFE2_DIR: its Torch_DIR and Caffe2_DIR), optionally with another compiler
# (CXX_COMPILER).
cmake_minimum_required(VERSION 3.18)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "command failed (${result}): ${ARGN}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(build_type -DCMAKE_BUILD_TYPE=Release)
# CXX_COMPILER: build the consumer with another compiler, warnings as errors.
if(CXX_COMPILER)
  list(APPEND build_type "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" -DCONSUMER_WERROR=ON)
endif()

if(MODE STREQUAL "find_package")
  set(prefix "${WORK_DIR}/prefix")
  run(${CMAKE_COMMAND} --install "${GRPO_BINARY_DIR}" --prefix "${prefix}")
  run("${prefix}/bin/grpo-train" --help)  # the command-line trainer is installed
  if(NOT EXISTS "${prefix}/include/grpo/grpo.hpp" OR NOT EXISTS "${prefix}/share/cmake/grpo/grpoConfig.cmake")
    message(FATAL_ERROR "install to ${prefix} is missing grpo/grpo.hpp or grpoConfig.cmake")
  endif()
  run(${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build" ${build_type}
      "-DCMAKE_PREFIX_PATH=${prefix}" "-DTorch_DIR=${TORCH_DIR}" "-DCaffe2_DIR=${CAFFE2_DIR}"
      -DCONSUMER_MODE=find_package)
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j 2)
  run("${WORK_DIR}/build/consumer_core")
  run("${WORK_DIR}/build/consumer_torch")
else()
  run(${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build" ${build_type}
      "-DGRPO_SOURCE_DIR=${GRPO_SOURCE_DIR}" "-DTorch_DIR=${TORCH_DIR}" "-DCaffe2_DIR=${CAFFE2_DIR}"
      -DCONSUMER_MODE=add_subdirectory)
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j 2)
  run("${WORK_DIR}/build/consumer_core")
  run("${WORK_DIR}/build/consumer_torch")
endif()
