"""Build step: generate the gRPC stubs from proto/ into omniembed/serve/_proto (grpcio-tools).

Everything else about the package lives in pyproject.toml; this file only adds the stub generation to
build_py, which both wheel and editable installs run. The stubs are never committed (see .gitignore).
"""

import importlib.util
import os

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
STUB_PACKAGE = "omniembed.serve._proto"


def _protogen():
    # Loaded by path: the build environment has grpcio-tools but not omniembed's runtime dependencies.
    spec = importlib.util.spec_from_file_location("_omniembed_protogen", os.path.join(ROOT, "serve", "protogen.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithStubs(build_py):
    def run(self):
        _protogen().generate(os.path.join(ROOT, "proto"), os.path.join(ROOT, "serve", "_proto"))
        if STUB_PACKAGE not in self.packages:
            self.packages.append(STUB_PACKAGE)
        self.package_data.setdefault(STUB_PACKAGE, []).extend(["*.proto", "*.pyi"])
        self.__dict__.pop("data_files", None)  # recomputed with the new package's files
        super().run()


setup(cmdclass={"build_py": BuildPyWithStubs})
