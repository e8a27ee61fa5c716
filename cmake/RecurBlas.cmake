# The CPU backend's BLAS: OpenBLAS (Debian's libopenblas-dev) through its CBLAS interface.
find_path(RECUR_CBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas
  /usr/include/x86_64-linux-gnu /usr/include)
find_library(RECUR_OPENBLAS_LIBRARY NAMES openblas)
if(NOT RECUR_CBLAS_INCLUDE_DIR OR NOT RECUR_OPENBLAS_LIBRARY)
  message(FATAL_ERROR "recur needs OpenBLAS (apt-get install libopenblas-dev)")
endif()
message(STATUS "recur: BLAS ${RECUR_OPENBLAS_LIBRARY}")
