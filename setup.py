"""Build the C core of the Lagrangian branch and bound; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gpuplan.solvers._gapbb",
            ["gpuplan/solvers/_gapbb.c"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra"],
        ),
    ]
)
