"""Build hook: generate the gRPC stubs from proto/ before packaging.

The generated modules (package `swarm.v1`) are build output: never edit or commit them.
"""
import pathlib
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from swarmd.protogen import generate  # noqa: E402


class BuildWithStubs(build_py):
    def run(self):
        generate()
        super().run()


setup(cmdclass={"build_py": BuildWithStubs})
