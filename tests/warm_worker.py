"""Imported once by the fork server the test suite's Dask workers start from (tests/conftest.py).

Importing the feature code and running it on one click track loads librosa and its numba
kernels (one of which librosa never caches), so each worker forked from that server
starts in well under a second instead of spending ~8 s of CPU doing the same.
"""

from pipeline.features.audio import compile_jit_kernels

compile_jit_kernels()
