# cmake -P script behind the `install_consumer` test: install the main build into a fresh prefix, then
# configure, build and run tests/install against that prefix alone.
#   -DHG_BUILD_DIR=<main build>  -DHG_CONSUMER_SOURCE=<tests/install>  -DHG_WORK_DIR=<scratch dir>
#   -DHG_GENERATOR=<generator>  -DHG_CXX_COMPILER=<compiler>  -DHG_BUILD_TYPE=<config>
foreach(var HG_BUILD_DIR HG_CONSUMER_SOURCE HG_WORK_DIR HG_GENERATOR HG_CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_install_check.cmake: -D${var}=... is required")
  endif()
endforeach()

# Runs a command; on failure prints what it was and its output, and fails the test.
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT status EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "install check: ${what} failed (${status}):\n  ${command}\n${out}\n${err}")
  endif()
  message(STATUS "install check: ${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${HG_WORK_DIR}/prefix)
set(consumer_build ${HG_WORK_DIR}/consumer-build)
file(REMOVE_RECURSE ${HG_WORK_DIR})
file(MAKE_DIRECTORY ${HG_WORK_DIR})

set(config_args)
if(HG_BUILD_TYPE)
  set(config_args --config ${HG_BUILD_TYPE})
endif()
run_step("install into ${prefix}" ${CMAKE_COMMAND} --install ${HG_BUILD_DIR} --prefix ${prefix} ${config_args})
if(NOT EXISTS ${prefix}/include/hopgrad/hopgrad.h)
  message(FATAL_ERROR "install check: ${prefix}/include/hopgrad/hopgrad.h was not installed")
endif()

# CMAKE_PREFIX_PATH names only the fresh prefix, so the consumer cannot pick up the build tree by accident.
run_step("configure the consumer"
  ${CMAKE_COMMAND} -S ${HG_CONSUMER_SOURCE} -B ${consumer_build} -G ${HG_GENERATOR}
  -DCMAKE_CXX_COMPILER=${HG_CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
run_step("build the consumer" ${CMAKE_COMMAND} --build ${consumer_build})
run_step("run the consumer" ${consumer_build}/app)
message(STATUS "${step_output}")
