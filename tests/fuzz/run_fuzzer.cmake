# One fuzz smoke test (tests/CMakeLists.txt): runs libFuzzer target FUZZER for SECONDS (with random SEED when set)
# over a fresh corpus folder in WORK_DIR (new inputs go there) and the repository's seeds SEEDS (read only), with
# dictionary DICT. Fails, with the input that crashed and the command that replays it, when the fuzzer finds a crash,
# a leak, a timeout or an allocation beyond its limits; prints libFuzzer's statistics otherwise.
cmake_minimum_required(VERSION 3.18)

foreach(variable FUZZER SEEDS WORK_DIR SECONDS)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "run_fuzzer.cmake needs -D${variable}=...")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}/corpus")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")
set(arguments -max_total_time=${SECONDS} -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=25 -print_final_stats=1
              "-artifact_prefix=${WORK_DIR}/artifacts/")
if(DICT)
  list(APPEND arguments "-dict=${DICT}")
endif()
if(SEED)  # a fixed seed makes make test repeatable; 0 or unset: libFuzzer picks one
  list(APPEND arguments "-seed=${SEED}")
endif()
set(log "${WORK_DIR}/fuzz.log")
execute_process(COMMAND "${FUZZER}" ${arguments} "${WORK_DIR}/corpus" "${SEEDS}"
                RESULT_VARIABLE result OUTPUT_FILE "${log}" ERROR_FILE "${log}")
# The log is read as one string: its lines hold unbalanced brackets, which CMake lists do not split.
file(READ "${log}" output)
if(NOT result EQUAL 0)
  # The report: from the first sanitizer or libFuzzer error on (what comes before is coverage progress).
  string(REGEX MATCH "(==[0-9]+==|ERROR: libFuzzer|runtime error|grpo fuzz: property|terminate called).*" report
               "${output}")
  string(SUBSTRING "${report}" 0 8000 report)
  file(GLOB artifacts "${WORK_DIR}/artifacts/*")
  message(FATAL_ERROR "${FUZZER} failed (exit ${result}); full log: ${log}\n${report}\n"
                      "Input: ${artifacts}\nReplay: ${FUZZER} <input>; keep it as a regression seed in ${SEEDS}")
endif()
string(REGEX MATCHALL "(Done [0-9]+ runs in [0-9]+ second|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb): *[0-9]+)"
       stats "${output}")
foreach(line IN LISTS stats)
  message(STATUS "${line}")
endforeach()
