"""Build hook: the org template lives at the project's top level (``org-template/``, where people look for it)
and travels in the wheel as ``orgctl/org_template/`` (package data :func:`orgctl.paths.template_dir` reads).
Everything else about the build is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATE = Path(__file__).resolve().parent / "org-template"


class BuildWithTemplate(build_py):
    """``build_py`` that also copies ``org-template/`` (dotfiles and ``.github/`` included) into the package."""

    def run(self) -> None:
        super().run()
        if not TEMPLATE.is_dir():
            raise SystemExit(f"the org template is missing from the source tree ({TEMPLATE})")
        self.copy_tree(str(TEMPLATE), str(Path(self.build_lib) / "orgctl" / "org_template"))


setup(cmdclass={"build_py": BuildWithTemplate})
