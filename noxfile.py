"""One test environment per framework, as people and CI run them: ``nox`` runs them all
(what ``scripts/test`` does), ``nox -s tensorflow`` one. Arguments after ``--`` go to pytest.

- ``core``: eikit without any framework, the unit tests (proves the core imports none).
- ``pytorch``: ``.venv`` (``scripts/setup``, the quick start's environment), every suite:
  unit, integration, the contract suite for PyTorch, and the container tests, which build
  and serve every framework's image.
- ``tensorflow``, ``mxnet``: that framework's runtime tests and the contract suite. They
  cannot share one environment: mxnet 1.9.1 needs numpy<1.24, current TensorFlow newer.
- ``extras``: each extra installed from the built wheel into a fresh environment, serving.
- ``docs``: the documentation site built with ``mkdocs build --strict`` (a broken link or
  anchor fails it); ``scripts/docs`` serves it from the same environment.

Python 3.8 (the EI images' interpreter) runs ``core`` and the ``mxnet`` extra where this
machine has one (pyenv's count: they are put on PATH here). Without it those are skipped
with a warning, unless ``EIKIT_REQUIRE_ALL_PYTHONS=1`` (CI) makes a missing one an error.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import Optional

import nox

PYTHON = "3.11"
OLDEST = "3.8"
REQUIRE_ALL_PYTHONS = os.environ.get("EIKIT_REQUIRE_ALL_PYTHONS") == "1"


def _interpreter(version: str) -> Optional[str]:
    """``pythonX.Y``: one pyenv holds (whether or not it is on PATH), else one on PATH."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    held = sorted(glob.glob("%s/versions/%s.*/bin/python%s" % (root, version, version)))
    return held[-1] if held else shutil.which("python" + version)


# nox finds interpreters on PATH, where pyenv's shims answer only for the versions it
# exposes: a folder holding just a pythonX.Y link puts the oldest there, and nothing else.
_OLDEST_BIN = _interpreter(OLDEST)
if _OLDEST_BIN:
    _LINKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".nox", "interpreters")
    os.makedirs(_LINKS, exist_ok=True)
    _LINK = os.path.join(_LINKS, "python" + OLDEST)
    if os.path.realpath(_LINK) != os.path.realpath(_OLDEST_BIN):
        if os.path.lexists(_LINK):
            os.unlink(_LINK)
        os.symlink(_OLDEST_BIN, _LINK)
    os.environ["PATH"] = _LINKS + os.pathsep + os.environ["PATH"]

nox.options.sessions = ["core", "pytorch", "tensorflow", "mxnet", "extras", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = REQUIRE_ALL_PYTHONS


def pytest(session: nox.Session, *paths: str) -> None:
    session.run("python", "-m", "pytest", *paths, *session.posargs)


# The core runs inside the EI images on Python 3.8: its unit tests run there too, not only
# under ruff's and mypy's 3.8 targets.
@nox.session(python=[OLDEST, PYTHON])
def core(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-c",
        "import eikit.server.app, eikit.cli, sys; assert not "
        "{'torch', 'tensorflow', 'mxnet'} & set(sys.modules), 'a framework was imported'",
    )
    pytest(session, "tests/unit")


@nox.session(python=False)
def pytorch(session: nox.Session) -> None:
    session.run("scripts/setup", external=True)
    session.run(".venv/bin/python", "-m", "pytest", "tests", *session.posargs, external=True)


# mxnet 1.9.1 uses np.bool, removed in numpy 1.24; the extra carries numpy<1.24 and the
# environment installs through it, as users do.
MXNET = "mxnet==1.9.1"


@nox.session(python=PYTHON)
def mxnet(session: nox.Session) -> None:
    session.install(MXNET, "-e", ".[mxnet,test]")
    session.env["EIKIT_REQUIRE_MXNET"] = "1"  # tests/mxnet fails here, never skips
    pytest(session, "tests/mxnet", "tests/contract")


# tensorflow-serving-api requires the full ``tensorflow`` package (its messages import
# TensorFlow's protos); next to tensorflow-cpu it goes in with --no-deps, plus what it needs.
TF_SERVING_API = ["tensorflow-serving-api==2.21.0"]
TF_SERVING_API_DEPS = ["grpcio>=1.60"]


@nox.session(python=PYTHON)
def tensorflow(session: nox.Session) -> None:
    session.install("tensorflow-cpu==2.21.0", "-e", ".[test]", *TF_SERVING_API_DEPS)
    session.install("--no-deps", *TF_SERVING_API)
    pytest(session, "tests/tensorflow", "tests/contract")


# Each extra as users install it: from the built wheel (not editable) into a fresh environment,
# on the Pythons it supports, then a real server serves the suites' model with it. MXNet 1.x
# needs numpy<1.24, which has no wheels past Python 3.11; 3.8 is what AWS's EI images run.
EXTRA_PYTHONS = {"mxnet": [OLDEST, PYTHON], "pytorch": [PYTHON], "tensorflow": [PYTHON]}
# The sandbox's pip takes torch 2.13.0 (CPU) from local disk; a looser pin pulls a CUDA build.
SANDBOX_PINS = {"pytorch": ["torch==2.13.0"]}


@nox.session(python=PYTHON)
def extras(session: nox.Session) -> None:
    import tempfile

    session.install("build", "twine")
    dist = tempfile.mkdtemp(prefix="eikit-dist-")
    session.run("python", "-m", "build", "--outdir", dist, silent=True)
    session.run("twine", "check", "--strict", *glob.glob(dist + "/*"))
    (wheel,) = glob.glob(dist + "/eikit-*.whl")
    for extra, pythons in EXTRA_PYTHONS.items():
        for version in pythons:
            interpreter = _interpreter(version)
            if interpreter is None:
                missing = "no python%s here: eikit[%s] not checked on it" % (version, extra)
                if REQUIRE_ALL_PYTHONS:
                    session.error(missing)
                session.warn(missing)
                continue
            venv = "%s/venv-%s-%s" % (dist, extra, version)
            session.run(interpreter, "-m", "venv", venv, external=True)
            pip = [venv + "/bin/python", "-m", "pip", "install", "--disable-pip-version-check"]
            pins = SANDBOX_PINS.get(extra, [])
            session.run(*pip, "-q", "%s[%s]" % (wheel, extra), *pins, external=True)
            session.run(venv + "/bin/python", "tests/package/serve_extra.py", extra, external=True)
            shutil.rmtree(venv)
    shutil.rmtree(dist)


# The site's settings page is generated from eikit.settings, so eikit is installed with it.
# Arguments after ``--`` are pytest's (scripts/test passes them to every session): not here.
@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    import tempfile

    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about MkDocs 2.0
    site = tempfile.mkdtemp(prefix="eikit-site-")
    session.run("mkdocs", "build", "--strict", "--site-dir", site)
    shutil.rmtree(site)
