"""nn-playground: watch small feedforward networks learn, live."""

import os

# BLAS threads on a 2-core machine make the small matmuls of a playground net 5-15x slower
# and erratic (measured, see docs/benchmarks.md); this must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
