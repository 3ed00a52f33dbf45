"""One test environment per framework, as people and CI run them: ``nox`` runs them all
(what ``scripts/test`` does), ``nox -s tensorflow`` one. Arguments after ``--`` go to pytest.

- ``core``: eikit without any framework, the unit tests (proves the core imports none).
- ``pytorch``: ``.venv`` (``scripts/setup``, the quick start's environment), every suite:
  unit, integration, the contract suite for PyTorch, and the container tests, which build
  and serve every framework's image.
- ``tensorflow``, ``mxnet``: that framework's runtime tests and the contract suite. They
  cannot share one environment: mxnet 1.9.1 needs numpy<1.24, current TensorFlow newer.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["core", "pytorch", "tensorflow", "mxnet", "extras"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


def pytest(session: nox.Session, *paths: str) -> None:
    session.run("python", "-m", "pytest", *paths, *session.posargs)


@nox.session(python=PYTHON)
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
EXTRA_PYTHONS = {"mxnet": ["3.8", "3.11"], "pytorch": ["3.11"], "tensorflow": ["3.11"]}
# The sandbox's pip takes torch 2.13.0 (CPU) from local disk; a looser pin pulls a CUDA build.
SANDBOX_PINS = {"pytorch": ["torch==2.13.0"]}


def _interpreter(version: str) -> "str | None":
    """``pythonX.Y``: on PATH, else one pyenv holds but has not put on PATH (this machine's)."""
    import glob
    import os
    import shutil

    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    held = sorted(glob.glob("%s/versions/%s.*/bin/python%s" % (root, version, version)))
    return held[-1] if held else shutil.which("python" + version)


@nox.session(python=PYTHON)
def extras(session: nox.Session) -> None:
    import glob
    import shutil
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
                session.error("python%s is not on PATH (eikit[%s] supports it)" % (version, extra))
            venv = "%s/venv-%s-%s" % (dist, extra, version)
            session.run(interpreter, "-m", "venv", venv, external=True)
            pip = [venv + "/bin/python", "-m", "pip", "install", "--disable-pip-version-check"]
            session.run(*pip, "-q", "%s[%s]" % (wheel, extra), *SANDBOX_PINS.get(extra, []), external=True)
            session.run(venv + "/bin/python", "tests/package/serve_extra.py", extra, external=True)
            shutil.rmtree(venv)
    shutil.rmtree(dist)
