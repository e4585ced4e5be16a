"""Build the C parts: the cores (the Lagrangian branch and bound, the shop search) and the executor's
task wrapper (`gpuplan/native/gpuplan-wrapper`, an executable); everything else is in pyproject.toml.

All are optional: without a C compiler the install still succeeds (with a warning), and gpuplan runs
without them (`gpuplan.native.available`, `shop_available`, `wrapper`: the executor then forks
Python wrappers, some 4 ms more CPU per launch, and says so in its log)."""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

WRAPPER = "gpuplan-wrapper"
WRAPPER_SOURCE = "gpuplan/native/wrapper.c"


class BuildExtAndWrapper(build_ext):
    """The extensions, then the wrapper, placed beside them (in the source tree too when in place)."""

    def run(self) -> None:
        super().run()
        try:
            built = self._build_wrapper()
        except Exception as exc:  # optional, as the extensions are: say so, go on
            print(f"warning: {WRAPPER} not built ({type(exc).__name__}: {exc})", file=sys.stderr)
            return
        if self.inplace:
            package_dir = self.get_finalized_command("build_py").get_package_dir("gpuplan.native")
            self.copy_file(built, os.path.join(package_dir, WRAPPER))

    def _build_wrapper(self) -> str:
        out_dir = os.path.join(self.build_lib, "gpuplan", "native")
        objects = self.compiler.compile(
            [WRAPPER_SOURCE],
            output_dir=self.build_temp,
            extra_postargs=["-O2", "-std=c99", "-Wall", "-Wextra"],
        )
        self.compiler.link_executable(objects, WRAPPER, output_dir=out_dir)
        return os.path.join(out_dir, WRAPPER)

    def get_outputs(self) -> list[str]:
        return [*super().get_outputs(), os.path.join(self.build_lib, "gpuplan", "native", WRAPPER)]


setup(
    cmdclass={"build_ext": BuildExtAndWrapper},
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
    ],
)
