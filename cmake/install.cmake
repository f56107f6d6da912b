# The installed library: a shared libkakusan (every module's objects, exporting only the C API and
# namespace kakusan), the public headers, the CLI, a CMake package and a pkg-config file.
#
#   find_package(kakusan CONFIG REQUIRED)  ->  target_link_libraries(app PRIVATE kakusan::kakusan)
#   pkg-config --cflags --libs kakusan
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(kakusan_modules core io backend nn tokenizer schedulers models pipeline)
if(KAKUSAN_HAVE_CUDA)
  list(APPEND kakusan_modules cuda)
endif()
list(TRANSFORM kakusan_modules PREPEND kakusan_ OUTPUT_VARIABLE kakusan_module_targets)

# The modules' own objects (compiled once, position-independent); linking the module targets too brings their
# dependencies (BLAS, oneDNN, ICU, libpng) and adds no second copy, every symbol being defined already.
add_library(kakusan_shared SHARED)
foreach(module_target ${kakusan_module_targets})
  target_sources(kakusan_shared PRIVATE $<TARGET_OBJECTS:${module_target}>)
endforeach()
target_link_libraries(kakusan_shared PRIVATE ${kakusan_module_targets})
add_library(kakusan::kakusan ALIAS kakusan_shared)
# Before 1.0 a minor release may break the ABI, so the soname carries major.minor: libkakusan.so.0.1.
set_target_properties(kakusan_shared PROPERTIES
  OUTPUT_NAME kakusan
  EXPORT_NAME kakusan
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
  LINKER_LANGUAGE CXX)
target_include_directories(kakusan_shared PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(kakusan_shared PUBLIC cxx_std_20)
set(kakusan_exports ${CMAKE_CURRENT_LIST_DIR}/kakusan.map)
target_link_options(kakusan_shared PRIVATE "LINKER:--version-script=${kakusan_exports}" "LINKER:--no-undefined")
set_property(TARGET kakusan_shared APPEND PROPERTY LINK_DEPENDS ${kakusan_exports})

install(TARGETS kakusan_cli kakusan_serve RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS kakusan_shared EXPORT kakusanTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kakusan DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(kakusan_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/kakusan)
install(EXPORT kakusanTargets NAMESPACE kakusan:: DESTINATION ${kakusan_cmake_dir})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/kakusanConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kakusanConfig.cmake INSTALL_DESTINATION ${kakusan_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kakusanConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kakusanConfig.cmake ${PROJECT_BINARY_DIR}/kakusanConfigVersion.cmake
  DESTINATION ${kakusan_cmake_dir})

# pkg-config paths relative to the .pc file, so the installed tree can be moved (and tested in a temporary
# prefix given to cmake --install --prefix).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(kakusan_pc_prefix "${CMAKE_INSTALL_PREFIX}")
else()
  string(REGEX REPLACE "[^/]+" ".." kakusan_pc_up "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(kakusan_pc_prefix "\${pcfiledir}/${kakusan_pc_up}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/kakusan.pc.in ${PROJECT_BINARY_DIR}/kakusan.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kakusan.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
