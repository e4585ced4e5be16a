"""Build the C core of the Lagrangian branch and bound; everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds (setuptools warns), and
gpuplan runs without the branch and bound (`gpuplan.native.available`)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gpuplan.native._gapbb",
            ["gpuplan/native/_gapbb.c"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra"],
            optional=True,
        ),
    ]
)
