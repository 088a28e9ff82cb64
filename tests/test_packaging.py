"""What a user gets from ``pip install riverlog``: one top-level package.

The wheel is built from a copy of the sources (so the build leaves nothing in
the checkout and two runs at once do not share a build directory), installed
into a fresh virtual environment, and imported from a directory that holds a
``client.py``, ``broker.py`` and ``native.py`` of the user's own: none of
them may shadow riverlog's.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "broker", "client", "native"]
BUILD_OUTPUTS = shutil.ignore_patterns("__pycache__", "*.so", "*.o", "_native.c", "*.egg-info", "build")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=BUILD_OUTPUTS)
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("riverlog-*.whl")
    return found


def test_the_wheel_installs_nothing_but_riverlog_at_top_level(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"riverlog"}
    # The native module, the C it is built from and every folder made it in.
    for expected in ("riverlog/__init__.py", "riverlog/broker/cli.py", "riverlog/client/producer.py",
                     "riverlog/native/riverlog_native.c", "riverlog/broker/storage/log.py"):
        assert expected in names
    assert any(n.startswith("riverlog/native/_native.") and n.endswith(".so") for n in names)
    assert not any(n.startswith("riverlog/client/_riverlog") for n in names), "the root package twice"


def test_the_installed_wheel_imports_beside_a_users_own_client_py(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    site = pathlib.Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, timeout=300)
    # riverlog's dependencies (trio, click, ...) from the test environment: a
    # plain path, so that environment's own .pth files (among them the
    # editable install of this checkout) are not processed.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "work"
    work.mkdir()
    for shadow in ("client", "broker", "native"):
        (work / f"{shadow}.py").write_text(f"raise SystemExit('the user\\'s own {shadow}.py was imported')\n")
    probe = (
        "import riverlog, riverlog.broker.cli, riverlog.client.cli\n"
        "from riverlog import Producer, Consumer, Admin, SyncConsumer\n"
        "from riverlog.client import Producer as P\n"
        "from riverlog import native\n"
        "assert Producer is P\n"
        "assert riverlog.__file__.startswith(%r), riverlog.__file__\n"
        "print(native.NATIVE)\n" % str(site)
    )
    ran = subprocess.run([str(python), "-c", probe], cwd=work, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.strip() == "True"  # the compiled module, not the twin
    cli = subprocess.run([str(python), "-m", "riverlog.broker.cli", "--help"], cwd=work,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and "broker" in cli.stdout, cli.stdout + cli.stderr
