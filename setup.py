"""Packaging beside pyproject.toml: ships the repository's ``data/`` folder as ``molgen._data``.

pyproject.toml cannot add a mapped package to the ones ``packages.find``
discovers, so the package list lives here; everything else is in
pyproject.toml. ``molgen.pretrained.data_dir`` finds the files in either place.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["molgen*"]) + ["molgen._data"],
    package_dir={"molgen._data": "data"},
)
