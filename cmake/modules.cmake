# kakusan_module(NAME DEPS ...): a static library kakusan_NAME from src/NAME/**/*.cpp, compiled
# position-independent so that the same objects make the CLI, the tests and the shared libkakusan.
# A module with no sources yet is an INTERFACE library so the graph always configures.
function(kakusan_module name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cpp)
  # src/backend/cuda is a library of its own (kakusan_cuda, cmake/cuda.cmake), built only with CUDA.
  list(FILTER sources EXCLUDE REGEX "/src/backend/cuda/")
  set(target kakusan_${name})
  if(sources)
    add_library(${target} STATIC ${sources})
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
    # -fPIC alone lets any exported function be interposed at run time, so GCC stops inlining them inside
    # their own file (vec_math's helpers in the kernels' loops grew 8 %); nothing of ours is meant to be
    # interposed, and with this the objects are the same size as -fPIE ones.
    target_compile_options(${target} PRIVATE -fno-semantic-interposition)
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(${target} PUBLIC ${ARG_DEPS})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
    target_link_libraries(${target} INTERFACE ${ARG_DEPS})
  endif()
endfunction()
