// src/dist/no_mpi.cpp: recur built without MPI (none was found): no communicator to have.
#include "recur/distributed.h"
#include "recur/error.h"

namespace recur {

bool mpi_available() { return false; }

std::shared_ptr<Communicator> mpi_communicator() {
  throw Error(
      "recur: mpi_communicator: data-parallel training is unavailable: recur was built "
      "without MPI (install Debian's libopenmpi-dev and openmpi-bin, then build again)");
}

}  // namespace recur
