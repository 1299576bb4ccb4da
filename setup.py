"""Declares the Cython extension; everything else lives in pyproject.toml.

MEMORYSTORE_NO_EXTENSIONS=1 builds a pure-Python package (py3-none-any wheel);
MEMORYSTORE_CYTHON_TRACING=1 builds with line tracing for coverage.
"""

import os
import sys

from setuptools import setup

NO_EXTENSIONS = bool(os.environ.get("MEMORYSTORE_NO_EXTENSIONS")) or sys.implementation.name != "cpython"
TRACING = bool(os.environ.get("MEMORYSTORE_CYTHON_TRACING"))

if NO_EXTENSIONS:
    print("memorystore: pure-Python build")
    setup()
else:
    from Cython.Build import cythonize
    from setuptools import Extension

    macros = [("CYTHON_TRACE_NOGIL", "1"), ("CYTHON_USE_SYS_MONITORING", "0")] if TRACING else []
    extensions = [
        Extension("memorystore._lru", ["src/memorystore/_lru.pyx"], define_macros=macros),
        # the shared-memory core (SharedMemoryStore); builds everywhere, works where there are
        # robust process-shared mutexes (Linux)
        Extension("memorystore._shm", ["src/memorystore/_shm.pyx"], define_macros=macros),
    ]
    setup(
        ext_modules=cythonize(
            extensions,
            compiler_directives={"linetrace": TRACING, "profile": TRACING},
            annotate=bool(os.environ.get("MEMORYSTORE_CYTHON_ANNOTATE")),
        )
    )
