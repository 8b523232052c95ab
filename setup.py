"""Build hook and layout: one installed package, `swarmd`, from the tree's top-level folders.

`manager/`, `agent/`, `discovery/` and `proto/` sit at the top of the tree and install as
`swarmd.manager`, `swarmd.agent`, `swarmd.discovery` and `swarmd.proto`; `swarmd/` holds the CLI,
the shared library (`swarmd.common`) and the development lab (`swarmd.localcluster`). The gRPC
stubs are generated into `proto/swarm/v1/` before packaging: build output, never edited or
committed.
"""
import pathlib
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from swarmd.protogen import generate  # noqa: E402

PACKAGE_DIRS = {
    "swarmd": "swarmd",
    "swarmd.manager": "manager",
    "swarmd.agent": "agent",
    "swarmd.discovery": "discovery",
    "swarmd.proto": "proto",
}


def packages() -> list[str]:
    """Every package under each mapped folder (a folder with an __init__.py)."""
    found = []
    for package, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            if "__pycache__" not in rel.parts:
                found.append(".".join([package, *rel.parts]) if rel.parts else package)
    return found


class BuildWithStubs(build_py):
    def run(self):
        generate()
        super().run()


setup(
    cmdclass={"build_py": BuildWithStubs},
    package_dir=PACKAGE_DIRS,
    packages=packages(),
    package_data={"swarmd.proto.swarm.v1": ["*.proto", "*.pyi"], "swarmd.manager.ui": ["static/*"]},
)
