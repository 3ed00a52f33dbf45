"""`eikit migrate endpoint`, killed at every step, then `resume` or `rollback`: the endpoint
always ends consistent.

The command runs as a subprocess against the moto server (tests/unit/cloud_server.py). The
server holds the N-th request that changes something (before moto applies it, or after:
then the change is made but the command never hears of it) until the test has killed the
command with SIGKILL; nothing in eikit knows. Then `eikit migrate resume` or `eikit migrate
rollback` runs on the state file it left. Consistent means: the endpoint InService, on the
new config (resume) or on whichever config AWS allows (rollback: the old one while its fleet
still runs, else the new one, since AWS refuses the EI config), with the autoscaling it had,
the user's step-scaling alarm driving a live policy, and no guardrail alarm left behind.

Kill points: after every changing request, and before the first request of each step (the
state file differs there; before any other request it is the same as after the one before).

A migration to Inf1 with ``--compile`` (the stand-in ``torch_neuron``, tests/pytorch/fakes,
in the command's process) is killed while it compiles (its upload held), once its upload was
made but not heard of, and after it: the archive is compiled again only when it was never
uploaded, and the compiled one is what the endpoint ends up serving.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from eikit.cli import main
from eikit.cloud.state import StateFile
from tests.frameworks import torch_linear_archive
from tests.neuron_host import FAKES, import_standins
from tests.unit.cloud_account import (
    Aws,
    add_scaling,
    add_step_scaling,
    dead_alarm_actions,
    eia_endpoint,
    push_image,
    scaling_of,
)
from tests.unit.cloud_server import BUCKET, MUTATING, REGISTRY, Hold

pytestmark = pytest.mark.slow

OLD = REGISTRY + ":pytorch-1.5-eia-py38"
NEW = REGISTRY + ":pytorch-2.13-cpu-py311"
# The changing requests of an uninterrupted run, in order, and the step each one starts.
CHANGES: List[Tuple[str, Optional[str]]] = [
    ("CreateModel", "create"),
    ("CreateEndpointConfig", None),
    ("PutMetricAlarm", "guardrails"),
    ("PutMetricAlarm", None),
    ("PutMetricAlarm", None),
    ("DeleteScalingPolicy", "remove-scaling"),
    ("DeleteScalingPolicy", None),
    ("DeleteScheduledAction", None),
    ("DeregisterScalableTarget", None),
    ("UpdateEndpoint", "update"),
    ("RegisterScalableTarget", "restore-scaling"),
    ("PutScalingPolicy", None),
    ("PutScalingPolicy", None),
    ("PutScheduledAction", None),
    ("PutMetricAlarm", None),
    ("DeleteAlarms", "remove-guardrails"),
]
POINTS = [(n, True) for n in range(1, len(CHANGES) + 1)] + [
    (n, False) for n, (_, starts) in enumerate(CHANGES, 1) if starts
]
INF1 = REGISTRY + ":pytorch-1.13-inf1-py310"
COMPILED = "s3://%s/flowers/model-inf1.tar.gz" % BUCKET
# The same to ml.inf1.xlarge with --compile: AWS gives Inf1 no guardrails.
INF1_CHANGES: List[Tuple[str, Optional[str]]] = [
    ("PutObject", "compile"),
    ("CreateModel", "create"),
    ("CreateEndpointConfig", None),
    ("DeleteScalingPolicy", "remove-scaling"),
    ("DeleteScalingPolicy", None),
    ("DeleteScheduledAction", None),
    ("DeregisterScalableTarget", None),
    ("UpdateEndpoint", "update"),
    ("RegisterScalableTarget", "restore-scaling"),
    ("PutScalingPolicy", None),
    ("PutScalingPolicy", None),
    ("PutScheduledAction", None),
    ("PutMetricAlarm", None),
]
# killed compiling (its upload held), its upload made but unheard of, before the next step
COMPILE_POINTS = [(1, False), (1, True), (2, False)]


def echo(body: bytes, content_type: str, accept: Optional[str]) -> Tuple[bytes, str]:
    return b'{"echo": %s}' % body, "application/json"


def account(aws: Aws, tmp_path: Path) -> Dict[str, Any]:
    """An EI user's endpoint with target tracking, a scheduled action and step scaling."""
    eia_endpoint(aws, count=2)
    push_image(aws, "pytorch-2.13-cpu-py311")
    add_scaling(aws, "flowers")
    add_step_scaling(aws, "flowers")
    aws.stand_in.fleets[OLD] = echo
    aws.stand_in.fleets[NEW] = echo
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "one.json").write_text("[1, 2, 3]")
    return scaling_of(aws, "flowers")


def inf1_account(aws: Aws, tmp_path: Path) -> Dict[str, Any]:
    """The same, its archive a real TorchScript model to compile for Inf1."""
    before = account(aws, tmp_path)
    archive = torch_linear_archive(tmp_path / "user")
    aws.s3.put_object(Bucket=BUCKET, Key="flowers/model.tar.gz", Body=archive)
    (tmp_path / "samples" / "one.json").write_text("[[1, 2, 3, 4]]")
    push_image(aws, "pytorch-1.13-inf1-py310")
    aws.stand_in.fleets[INF1] = echo
    return before


def command(tmp_path: Path, instance_type: str = "ml.c5.xlarge") -> List[str]:
    words = [
        sys.executable, "-c", "import sys; from eikit.cli import main; sys.exit(main())",
        "migrate", "endpoint", "flowers", "--instance-type", instance_type,
        "--state", str(tmp_path / "state.json"), "--samples", str(tmp_path / "samples"),
        "--baseline", str(tmp_path / "baseline.json"), "--traffic", "canary:50:60",
        "--repeat", "1", "--poll", "0",
    ]  # fmt: skip
    if instance_type.startswith("ml.inf1."):
        words += ["--compile", "--in-process", "--rtol", "0.02", "--atol", "0.001"]
    return words


def changes(aws: Aws, since: int) -> List[str]:

    camel = [c.title().replace("_", "") for c in aws.stand_in.calls[since:]]
    return [c for c in camel if MUTATING.match(c)]


def consistent(aws: Aws, before: Dict[str, Any]) -> Dict[str, Any]:
    now = aws.sm.describe_endpoint(EndpointName="flowers")
    assert now["EndpointStatus"] == "InService"
    assert scaling_of(aws, "flowers") == before
    assert dead_alarm_actions(aws) == []
    names = [a["AlarmName"] for a in aws.cloudwatch.describe_alarms()["MetricAlarms"]]
    assert names == ["flowers-v1-cpu-high"]  # the user's; eikit's guardrails are gone
    return dict(now)


def test_an_uninterrupted_run_makes_these_changes(aws: Aws, tmp_path: Path) -> None:
    before = account(aws, tmp_path)
    since = len(aws.stand_in.calls)
    done = subprocess.run(
        command(tmp_path), env=aws.env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert changes(aws, since) == [op for op, _ in CHANGES]
    assert consistent(aws, before)["EndpointConfigName"].startswith("flowers-config-")
    assert "parity: every answer matches" in done.stdout


def kill_at(aws: Aws, tmp_path: Path, argv: List[str], env: Dict[str, str], hold: Hold,
            operation: str) -> None:  # fmt: skip
    """Run ``argv`` until the server holds its ``hold.nth`` change; kill it there."""
    aws.stand_in.hold = hold
    log = (tmp_path / "killed.log").open("w")
    killed = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    try:
        while not hold.reached.wait(0.5):
            assert killed.poll() is None, (tmp_path / "killed.log").read_text()
        assert hold.operation == operation
        killed.kill()
        killed.wait(60)
    finally:
        if killed.poll() is None:
            killed.kill()
        hold.release.set()
        aws.stand_in.hold = None
        log.close()


@pytest.mark.parametrize("follow", ["resume", "rollback"])
@pytest.mark.parametrize("nth, after", POINTS, ids=["%d-%s" % (n, "after" if a else "before")
                                                    for n, a in POINTS])  # fmt: skip
def test_killed_at_every_step(
    aws: Aws, tmp_path: Path, capsys: Any, nth: int, after: bool, follow: str
) -> None:
    before = account(aws, tmp_path)
    kill_at(aws, tmp_path, command(tmp_path), aws.env(), Hold(nth, after), CHANGES[nth - 1][0])
    state = tmp_path / "state.json"
    code = main(["migrate", follow, "--state", str(state), "--poll", "0"])
    out = capsys.readouterr()
    now = consistent(aws, before)
    step = StateFile.load(state).step
    if follow == "resume":
        assert (code, step) == (0, "done"), out
        assert now["EndpointConfigName"].startswith("flowers-config-")
        assert "parity: every answer matches" in out.out
    elif now["EndpointConfigName"] == "flowers-config":
        assert (code, step) == (0, "rolled-back"), out
        assert aws.stand_in.calls.count("update_endpoint") <= 1  # never the EI config again
    else:  # the old fleet was gone: AWS refuses the EI config, the endpoint stays
        assert (code, step) == (1, "done"), out
        assert "rollback refused" in out.out


# --- with the compile step ------------------------------------------------------------------


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    pytest.importorskip("torch")
    yield from import_standins(monkeypatch)


def neuron_env(aws: Aws) -> Dict[str, str]:
    env = aws.env()
    env["PYTHONPATH"] = os.pathsep.join([str(FAKES), env.get("PYTHONPATH", "")])
    return env


def serving(aws: Aws) -> Any:
    config = aws.sm.describe_endpoint(EndpointName="flowers")["EndpointConfigName"]
    variant = aws.sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    return aws.sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]


def test_an_uninterrupted_run_to_inf1_compiles_then_makes_these_changes(
    aws: Aws, tmp_path: Path, standins: Any
) -> None:
    before = inf1_account(aws, tmp_path)
    since = len(aws.stand_in.calls)
    done = subprocess.run(command(tmp_path, "ml.inf1.xlarge"), env=neuron_env(aws),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert changes(aws, since) == [op for op, _ in INF1_CHANGES]
    consistent(aws, before)
    assert serving(aws) == {"Image": INF1, "ModelDataUrl": COMPILED,
                            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}  # fmt: skip
    assert "uploaded %s (compiled for inf1" % COMPILED in done.stdout


@pytest.mark.parametrize("follow", ["resume", "rollback"])
@pytest.mark.parametrize("nth, after", COMPILE_POINTS, ids=["%d-%s" % (n, "after" if a else
                         "before") for n, a in COMPILE_POINTS])  # fmt: skip
def test_killed_around_the_compile_step(
    aws: Aws, tmp_path: Path, capsys: Any, standins: Any, nth: int, after: bool, follow: str
) -> None:
    before = inf1_account(aws, tmp_path)
    since = len(aws.stand_in.calls)
    argv = command(tmp_path, "ml.inf1.xlarge")
    kill_at(aws, tmp_path, argv, neuron_env(aws), Hold(nth, after), INF1_CHANGES[nth - 1][0])
    uploaded = nth > 1 or after  # the killed run's upload was made
    state = tmp_path / "state.json"
    code = main(["migrate", follow, "--state", str(state), "--poll", "0"])
    out = capsys.readouterr()
    now = consistent(aws, before)
    uploads = changes(aws, since).count("PutObject")  # the held one is recorded too
    if follow == "resume":
        assert (code, StateFile.load(state).step) == (0, "done"), out
        assert serving(aws)["ModelDataUrl"] == COMPILED
        assert "parity: every answer matches" in out.out
        # compiled again here only when the killed run's archive never reached S3
        assert len(standins.calls) == (0 if uploaded else 1)
        assert uploads == (1 if uploaded else 2)
        if (nth, after) == (1, True):  # uploaded, but the step was not recorded as done
            assert (
                "%s is compiled for inf1 already (from the same model file): used" % (COMPILED)
                in out.out
            )
    else:  # nothing on the endpoint had changed: back where it was
        assert (code, StateFile.load(state).step) == (0, "rolled-back"), out
        assert now["EndpointConfigName"] == "flowers-config"
        assert standins.calls == [] and uploads == 1
        assert (COMPILED in out.out) == uploaded  # left in place, and said so
