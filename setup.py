"""Package discovery for the three import packages (metadata lives in pyproject.toml).

plugins/ and evaluation/ are installed as ``memo_zoo_plugins`` and ``memo_zoo_eval`` so that no
generic top-level name ("plugins", "evaluation") lands in site-packages; pyproject's
``package-dir`` maps the directories, and this file lists their sub-packages under the new names,
which ``[tool.setuptools.packages.find]`` cannot do.
"""

from setuptools import find_packages, setup


def _packages(source_dir: str, import_name: str) -> list[str]:
    return [import_name] + [f"{import_name}.{sub}" for sub in find_packages(source_dir)]


setup(
    packages=_packages("memo_zoo", "memo_zoo")
    + _packages("plugins", "memo_zoo_plugins")
    + _packages("evaluation", "memo_zoo_eval")
)
