# The native module is built out of line by cffi at install time; setuptools
# cannot declare cffi_modules in pyproject.toml, hence this stub.
from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])
