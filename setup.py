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
    import subprocess

    from Cython.Build import cythonize
    from setuptools import Extension
    from setuptools.command.build_ext import build_ext

    macros = [("CYTHON_TRACE_NOGIL", "1"), ("CYTHON_USE_SYS_MONITORING", "0")] if TRACING else []
    extensions = [
        Extension("memorystore._lru", ["src/memorystore/_lru.pyx"], define_macros=macros),
        # the shared-memory core (SharedMemoryStore); builds everywhere, works where there are
        # robust process-shared mutexes (Linux)
        Extension("memorystore._shm", ["src/memorystore/_shm.pyx"], define_macros=macros),
    ]

    class BuildExt(build_ext):
        """GCC: a larger inlining budget for the module (``inline-unit-growth``).

        Cython keeps every cdef method's body for the class's vtable, so each copy the
        compiler inlines grows the module; at GCC's default budget (40%) the core sits at
        the limit, and any new code makes GCC stop inlining the lookups of ``c[k]``,
        ``get`` and ``set`` (+12 to +40 instructions each, bench/instructions.py).
        Other compilers build as they are.
        """

        def build_extensions(self) -> None:
            if is_gcc(self.compiler.compiler_so[0] if hasattr(self.compiler, "compiler_so") else None):
                for extension in self.extensions:
                    extension.extra_compile_args.append("--param=inline-unit-growth=100")
            super().build_extensions()

    def is_gcc(compiler: str | None) -> bool:
        if compiler is None:
            return False
        try:
            version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return False
        return "Free Software Foundation" in version and "clang" not in version

    setup(
        cmdclass={"build_ext": BuildExt},
        ext_modules=cythonize(
            extensions,
            compiler_directives={"linetrace": TRACING, "profile": TRACING},
            annotate=bool(os.environ.get("MEMORYSTORE_CYTHON_ANNOTATE")),
        ),
    )
