# The build configuration setuptools cannot take from pyproject.toml:
#
# * the cffi module, built out of line at install time (cffi_modules);
# * the package map. The repository keeps broker/, client/ and native/ at its
#   top, and they install as riverlog.broker, riverlog.client and
#   riverlog.native under one top-level package, riverlog, whose __init__
#   lives in client/_riverlog/. Nothing else is installed at top level
#   (tests/test_packaging.py holds that).
from setuptools import find_packages, setup

FOLDERS = ("broker", "client", "native")
ROOT_PACKAGE_DIR = "client/_riverlog"

packages = ["riverlog"]
for folder in FOLDERS:
    packages.append(f"riverlog.{folder}")
    packages += [f"riverlog.{folder}.{sub}" for sub in find_packages(folder) if sub != "_riverlog"]

setup(
    packages=packages,
    package_dir={"riverlog": ROOT_PACKAGE_DIR, **{f"riverlog.{folder}": folder for folder in FOLDERS}},
    package_data={"riverlog.native": ["*.c", "*.h"]},
    cffi_modules=["native/build_native.py:ffibuilder"],
)
