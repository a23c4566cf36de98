# CMake toolchain file for cross-compiling to 64-bit Windows with Debian's
# mingw-w64 (posix threads flavour, for std::thread and std::mutex).
#
# Used by deploy/windows/build_deps.sh (the dependency prefix) and
# deploy/windows/cross_build.sh (labtrace itself). Pass the prefix with
# -DLABTRACE_MINGW_DEPS=/path/to/prefix so find_package() looks there and only
# there (never in the Linux host's /usr).

set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER ${MINGW_TRIPLE}-windres)

# try_compile() re-reads this file in a fresh project: forward the prefix.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES LABTRACE_MINGW_DEPS)

set(CMAKE_FIND_ROOT_PATH /usr/${MINGW_TRIPLE})
if(LABTRACE_MINGW_DEPS)
  list(APPEND CMAKE_FIND_ROOT_PATH ${LABTRACE_MINGW_DEPS})
  list(APPEND CMAKE_PREFIX_PATH ${LABTRACE_MINGW_DEPS})
endif()
# Programs (protoc, grpc_cpp_plugin) come from the host; everything else from
# the Windows roots only.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
