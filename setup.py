"""Packaging hook: the repository's arch_configs/ ships as package data of accelsim.model.arch_configs.

pyproject.toml cannot both find packages and map one package to a folder outside the tree, so the
package list and that one mapping live here; everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["accelsim*", "kernels*"]) + ["accelsim.model.arch_configs"],
    package_dir={"accelsim.model.arch_configs": "arch_configs"},
)
