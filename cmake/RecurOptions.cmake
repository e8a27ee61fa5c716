# Compile options shared by recur's own targets. Nothing here is exported.

set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

option(RECUR_WERROR "Treat warnings in recur's own C++ code as errors" OFF)

# recur_warnings(target): -Wall -Wextra for C++, and the same through nvcc for CUDA;
# with RECUR_WERROR every C++ warning of recur's own code is an error (scripts/fuzz.sh's
# clang build is the check that clang compiles the project without warnings).
function(recur_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  if(RECUR_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
endfunction()

# recur_sanitize(target): ASan + UBSan when RECUR_SANITIZE is on (RECUR_FUZZ turns it on),
# float-cast-overflow by name: a double from a file converted to an integer out of range is
# exactly the bug a loader has, and GCC's -fsanitize=undefined leaves that check out.
# RECUR_FUZZ adds libFuzzer's coverage instrumentation (fuzzer-no-link: only the fuzz
# targets link libFuzzer's main).
function(recur_sanitize target)
  if(RECUR_SANITIZE)
    set(checks address,undefined,float-cast-overflow)
    if(RECUR_FUZZ)
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
    endif()
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${checks} -fno-omit-frame-pointer -fno-sanitize-recover=all>)
    target_link_options(${target} PRIVATE -fsanitize=${checks})
  endif()
endfunction()
