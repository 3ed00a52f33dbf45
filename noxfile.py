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

nox.options.sessions = ["core", "pytorch", "tensorflow", "mxnet"]
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


# mxnet 1.9.1 uses np.bool, removed in numpy 1.24: the constraint is part of the install.
MXNET = ("mxnet==1.9.1", "numpy<1.24")


@nox.session(python=PYTHON)
def mxnet(session: nox.Session) -> None:
    session.install(*MXNET, "-e", ".[test]")
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
