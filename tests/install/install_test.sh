#!/usr/bin/env bash
# install_test.sh build|run — the install test (tests/install/CMakeLists.txt sets the environment).
#   build: cmake --install the build into $INSTALL_TEST_WORK/prefix; build consumer/ with find_package and
#          consumer.c with pkg-config, seeing nothing of the source or build tree.
#   run:   run both on the tiny model; each must write a 64x64 image, and the C and C++ APIs the same one.
set -euo pipefail
work="$INSTALL_TEST_WORK"
prefix="$work/prefix"
here="$(cd "$(dirname "$0")" && pwd)"

case "${1:-}" in
build)
  rm -rf "$work"
  mkdir -p "$work"
  "$CMAKE_COMMAND" --install "$KAKUSAN_BUILD_DIR" --prefix "$prefix" >"$work/install.log"
  for f in include/kakusan/kakusan.h include/kakusan/pipeline.h include/kakusan/image.h bin/kakusan; do
    [ -e "$prefix/$f" ] || { echo "install: $prefix/$f missing" >&2; exit 1; }
  done
  lib=$(find "$prefix" -name 'libkakusan.so.*.*.*' | head -1)
  soname=$(objdump -p "$lib" | sed -n 's/^ *SONAME *//p')
  [ -e "$(dirname "$lib")/$soname" ] || { echo "install: soname link $soname missing beside $lib" >&2; exit 1; }
  echo "installed $lib (soname $soname)"

  # C++: find_package(kakusan CONFIG) from the installed tree only.
  "$CMAKE_COMMAND" -S "$here/consumer" -B "$work/consumer-build" -G "$CMAKE_GENERATOR" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_FLAGS="${CONSUMER_FLAGS:-}" -DCMAKE_EXE_LINKER_FLAGS="${CONSUMER_FLAGS:-}" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/consumer-configure.log"
  "$CMAKE_COMMAND" --build "$work/consumer-build"

  # C: pkg-config, the way a Makefile would use it.
  pc_dir=$(dirname "$(find "$prefix" -name kakusan.pc | head -1)")
  flags=$(PKG_CONFIG_PATH="$pc_dir" PKG_CONFIG_LIBDIR="$pc_dir" pkg-config --cflags --libs kakusan)
  libdir=$(PKG_CONFIG_PATH="$pc_dir" PKG_CONFIG_LIBDIR="$pc_dir" pkg-config --variable=libdir kakusan)
  # shellcheck disable=SC2086  # $flags and $CONSUMER_FLAGS are lists of flags
  "$CC" ${CONSUMER_FLAGS:-} -std=c11 -Wall -Wextra -Werror "$here/consumer.c" $flags -Wl,-rpath,"$libdir" -o "$work/c_consumer"
  echo "built $work/consumer-build/consumer (find_package) and $work/c_consumer (pkg-config: $flags)"
  ;;
run)
  golden="${KAKUSAN_GOLDEN_DIR:-$KAKUSAN_SOURCE_DIR/../shared/golden}"
  if [ ! -d "$golden/tiny-sd" ]; then
    echo "SKIPPED: golden kit not found ($golden/tiny-sd is not a directory; set KAKUSAN_GOLDEN_DIR)"
    exit 77
  fi
  "$work/consumer-build/consumer" "$golden/tiny-sd" "$work/cpp.ppm"
  "$work/c_consumer" "$golden/tiny-sd" "$work/c.ppm"
  for image in "$work/cpp.ppm" "$work/c.ppm"; do
    header=$(head -c 13 "$image" | tr '\n' ' ')
    size=$(stat -c %s "$image")
    [ "$header" = "P6 64 64 255 " ] && [ "$size" -eq $((13 + 64 * 64 * 3)) ] ||
      { echo "$image: not a 64x64 binary PPM (header '$header', $size bytes)" >&2; exit 1; }
  done
  cmp "$work/cpp.ppm" "$work/c.ppm" || { echo "the C and C++ APIs gave different images" >&2; exit 1; }
  echo "both consumers wrote the same 64x64 image"
  ;;
*)
  echo "usage: $0 build|run" >&2
  exit 2
  ;;
esac
