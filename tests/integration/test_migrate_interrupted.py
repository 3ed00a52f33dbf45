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
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from eikit.cli import main
from eikit.cloud.state import StateFile
from tests.unit.cloud_account import (
    Aws,
    add_scaling,
    add_step_scaling,
    dead_alarm_actions,
    eia_endpoint,
    moto_aws,
    push_image,
    scaling_of,
)
from tests.unit.cloud_server import MUTATING, REGISTRY, Hold

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


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    yield from moto_aws(monkeypatch)


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


def command(tmp_path: Path) -> List[str]:
    return [
        sys.executable, "-c", "import sys; from eikit.cli import main; sys.exit(main())",
        "migrate", "endpoint", "flowers", "--instance-type", "ml.c5.xlarge",
        "--state", str(tmp_path / "state.json"), "--samples", str(tmp_path / "samples"),
        "--baseline", str(tmp_path / "baseline.json"), "--traffic", "canary:50:60",
        "--repeat", "1", "--poll", "0",
    ]  # fmt: skip


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


@pytest.mark.parametrize("follow", ["resume", "rollback"])
@pytest.mark.parametrize("nth, after", POINTS, ids=["%d-%s" % (n, "after" if a else "before")
                                                    for n, a in POINTS])  # fmt: skip
def test_killed_at_every_step(
    aws: Aws, tmp_path: Path, capsys: Any, nth: int, after: bool, follow: str
) -> None:
    before = account(aws, tmp_path)
    hold = Hold(nth, after)
    aws.stand_in.hold = hold
    log = (tmp_path / "killed.log").open("w")
    killed = subprocess.Popen(command(tmp_path), env=aws.env(), stdout=log, stderr=log)
    try:
        while not hold.reached.wait(0.5):
            assert killed.poll() is None, (tmp_path / "killed.log").read_text()
        assert hold.operation == CHANGES[nth - 1][0]
        killed.kill()
        killed.wait(60)
    finally:
        if killed.poll() is None:
            killed.kill()
        hold.release.set()
        aws.stand_in.hold = None
        log.close()
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
