"""Build the C cores (the Lagrangian branch and bound, the shop search); everything else is in
pyproject.toml.

The extensions are optional: without a C compiler the install still succeeds (setuptools warns), and
gpuplan runs without them (`gpuplan.native.available`, `gpuplan.native.shop_available`)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gpuplan.native._gapbb",
            ["gpuplan/native/_gapbb.c"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra"],
            optional=True,
        ),
        Extension(
            "gpuplan.native._shop",
            ["gpuplan/native/_shop.c"],
            extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra"],
            optional=True,
        ),
    ]
)
