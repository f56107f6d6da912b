# The CUDA backend (src/backend/cuda -> kakusan_cuda), behind -DKAKUSAN_CUDA=AUTO|ON|OFF.
#   AUTO (default): built when the CUDA toolkit with cuBLASLt and cuDNN 9 is found, skipped with a message
#                   otherwise; ON: the same, but a missing piece stops the configure naming it; OFF: never.
# The toolkit comes from find_package(CUDAToolkit) (CUDAToolkit_ROOT / CUDACXX / nvcc on PATH pick it), and
# cuDNN is looked for beside it (or under CUDNN_ROOT), so no CUDA path is written here.
# Sets KAKUSAN_HAVE_CUDA.
set(KAKUSAN_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when the toolkit, cuBLASLt and cuDNN 9 are found), ON, OFF")
set_property(CACHE KAKUSAN_CUDA PROPERTY STRINGS AUTO ON OFF)
set(KAKUSAN_HAVE_CUDA OFF)

function(kakusan_cuda_missing what)
  if(KAKUSAN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "KAKUSAN_CUDA=ON: ${what} (use -DKAKUSAN_CUDA=AUTO or OFF to build without CUDA)")
  endif()
  message(STATUS "CUDA backend: off (${what})")
endfunction()

if(NOT KAKUSAN_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "KAKUSAN_CUDA must be AUTO, ON or OFF, not \"${KAKUSAN_CUDA}\"")
endif()

if(NOT KAKUSAN_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit 12 QUIET)  # CUDA 12's graph API (cudaGraphInstantiate with flags)
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CUDAToolkit_FOUND OR NOT CMAKE_CUDA_COMPILER)
    kakusan_cuda_missing("no CUDA toolkit 12 or later (nvcc) found; set CUDAToolkit_ROOT or put nvcc on PATH")
  elseif(NOT TARGET CUDA::cublasLt)
    kakusan_cuda_missing("the CUDA toolkit at ${CUDAToolkit_LIBRARY_ROOT} has no cuBLASLt")
  else()
    get_filename_component(kakusan_cuda_prefix "${CUDAToolkit_LIBRARY_ROOT}" ABSOLUTE)
    find_path(CUDNN_INCLUDE_DIR cudnn_version.h
      HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS} ${kakusan_cuda_prefix}
      PATH_SUFFIXES include)
    find_library(CUDNN_LIBRARY cudnn
      HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR} ${kakusan_cuda_prefix}
      PATH_SUFFIXES lib64 lib)
    set(kakusan_cudnn_major "no cudnn_version.h")
    if(CUDNN_INCLUDE_DIR AND EXISTS "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
      file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" kakusan_cudnn_line REGEX "^#define CUDNN_MAJOR [0-9]+")
      string(REGEX REPLACE "^#define CUDNN_MAJOR ([0-9]+).*" "cuDNN \\1" kakusan_cudnn_major "${kakusan_cudnn_line}")
    endif()
    if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
      kakusan_cuda_missing("cuDNN not found beside the CUDA toolkit (set CUDNN_ROOT)")
    elseif(NOT kakusan_cudnn_major STREQUAL "cuDNN 9")
      kakusan_cuda_missing("cuDNN 9 is needed, ${CUDNN_INCLUDE_DIR} has ${kakusan_cudnn_major}")
    else()
      set(KAKUSAN_HAVE_CUDA ON)
    endif()
  endif()
endif()

if(KAKUSAN_HAVE_CUDA)
  # Ampere (A100, A10/3090), Ada (L4/4090), Hopper (H100) as machine code, and Hopper's PTX for later GPUs.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "80-real;86-real;89-real;90" CACHE STRING "GPU architectures of the CUDA backend")
  endif()
  find_program(KAKUSAN_CCACHE ccache)
  if(KAKUSAN_CCACHE AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${KAKUSAN_CCACHE})
  endif()
  enable_language(CUDA)
  # The .cu files include only kernels.h (CMake 3.25 has no C++20 dialect flag for nvcc).
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)

  file(GLOB kakusan_cuda_sources CONFIGURE_DEPENDS
    ${PROJECT_SOURCE_DIR}/src/backend/cuda/*.cpp ${PROJECT_SOURCE_DIR}/src/backend/cuda/*.cu)
  add_library(kakusan_cuda STATIC ${kakusan_cuda_sources})
  set_target_properties(kakusan_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF)
  target_include_directories(kakusan_cuda PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include
                             PRIVATE ${CUDNN_INCLUDE_DIR})
  # The runtime is linked statically and opens the driver (libcuda) at run time; cuBLASLt and cuDNN are
  # opened at run time too (src/backend/cuda/libraries.cpp): linked, they would add some 200 MB of resident
  # memory to every run of the CLI, CPU runs included. A carried build needs only those three on the GPU machine.
  target_link_libraries(kakusan_cuda PUBLIC kakusan_core PRIVATE CUDA::cudart_static ${CMAKE_DL_LIBS})
  target_compile_options(kakusan_cuda PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-Wall>
    $<$<COMPILE_LANGUAGE:CXX>:-fno-semantic-interposition>)
  # The backend registry (kakusan_backend) names the "cuda" kind, and kakusan_cuda implements Backend: the
  # two static libraries refer to each other, which CMake lays out on the link line.
  target_link_libraries(kakusan_cuda PUBLIC kakusan_backend)
  target_link_libraries(kakusan_backend PUBLIC kakusan_cuda)
  target_compile_definitions(kakusan_backend PRIVATE KAKUSAN_HAVE_CUDA=1)  # registry.cpp names the kind
  message(STATUS "CUDA backend: on (CUDA ${CUDAToolkit_VERSION}, ${kakusan_cudnn_major}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
endif()
