"""pygasi gateway package."""

import os

# numpy's OpenBLAS starts a worker thread that busy-waits between calls and doubles the cost
# of the resampler's matrix products (bench/README.md): one thread, set before anything in
# this process can import numpy (the gateway, the CLI and the demo all import this package
# first).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
del _name
