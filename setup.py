"""Package list for the lerec.* namespace (the folders are mapped in pyproject.toml)."""

from setuptools import find_packages, setup

TOPS = ("protocol", "device", "hub", "deploy")
packages = []
for top in TOPS:
    packages.append(f"lerec.{top}")
    packages += [f"lerec.{top}.{sub}" for sub in find_packages(top)]

setup(packages=packages)
