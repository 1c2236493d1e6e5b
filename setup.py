"""The wheel carries the contract and the fixtures inside the package.

`openapi.yaml` and `fixtures/` live at the repository root (the sandbox, its tests and its
Dockerfile read them there); the installed package `layer_sandbox` finds them beside its modules.
An editable install maps `layer_sandbox` to `sandbox/`, whose parent holds both.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        package = Path(self.build_lib) / "layer_sandbox"
        shutil.copy2(ROOT / "openapi.yaml", package / "openapi.yaml")
        shutil.copytree(ROOT / "fixtures", package / "fixtures", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildWithData})
