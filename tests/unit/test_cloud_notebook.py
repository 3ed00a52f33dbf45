"""eikit migrate notebook in each state a notebook instance can be in (moto + stand-in)."""

from __future__ import annotations

import io
from typing import Any, List, Optional

import pytest

from eikit.cli import main
from eikit.cloud import cli_common
from eikit.cloud.aws import CloudError
from eikit.cloud.notebook import migrate_notebook
from tests.unit.cloud_account import Aws
from tests.unit.cloud_server import ROLE


def notebook(aws: Aws, status: str, then: Optional[List[str]] = None) -> None:
    aws.sm.create_notebook_instance(
        NotebookInstanceName="lab", InstanceType="ml.t2.medium", RoleArn=ROLE,
        AcceleratorTypes=["ml.eia2.medium"],
    )  # fmt: skip
    aws.stand_in.set_notebook_status("lab", status, then)


def move(aws: Aws, stop: bool = False, start: bool = False, dry_run: bool = False) -> str:
    out = io.StringIO()
    code = migrate_notebook(
        aws.clients, "lab", "ml.g4dn.xlarge", stop, start, aws.waiter(), 1800, out, dry_run
    )
    assert code == 0
    return out.getvalue()


def described(aws: Aws) -> Any:
    return aws.sm.describe_notebook_instance(NotebookInstanceName="lab")


def test_stopped_notebook_is_updated_and_its_accelerator_removed(aws: Aws) -> None:
    notebook(aws, "Stopped")
    out = move(aws)
    now = described(aws)
    assert now["InstanceType"] == "ml.g4dn.xlarge"
    assert not now.get("AcceleratorTypes")
    assert now["NotebookInstanceStatus"] == "Stopped"
    assert "conda_pytorch_p310" in out and "amazonei" in out and ".to('cuda')" in out
    assert "notebook instance lab: Updating" in aws.progress.getvalue()
    assert "stop_notebook_instance" not in aws.stand_in.calls


def test_running_notebook_is_refused_without_stop(aws: Aws) -> None:
    notebook(aws, "InService")
    with pytest.raises(CloudError, match="only while Stopped.*--stop"):
        move(aws)
    assert "update_notebook_instance" not in aws.stand_in.calls


def test_running_notebook_with_stop_and_start(aws: Aws) -> None:
    notebook(aws, "InService")
    move(aws, stop=True, start=True)
    now = described(aws)
    assert (now["InstanceType"], now["NotebookInstanceStatus"]) == ("ml.g4dn.xlarge", "InService")
    calls = [c for c in aws.stand_in.calls if c != "describe_notebook_instance"]
    assert calls == [
        "create_notebook_instance", "stop_notebook_instance", "update_notebook_instance",
        "start_notebook_instance",
    ]  # fmt: skip
    progress = aws.progress.getvalue()
    for status in ("Stopping", "Stopped", "Updating", "Pending", "InService"):
        assert "notebook instance lab: %s" % status in progress


def test_stopping_notebook_is_waited_for(aws: Aws) -> None:
    notebook(aws, "Stopping", then=["Stopping", "Stopping", "Stopped"])
    move(aws)
    assert described(aws)["InstanceType"] == "ml.g4dn.xlarge"


def test_pending_notebook_with_stop_waits_for_in_service_first(aws: Aws) -> None:
    notebook(aws, "Pending", then=["Pending", "InService"])
    move(aws, stop=True)
    assert described(aws)["NotebookInstanceStatus"] == "Stopped"
    assert described(aws)["InstanceType"] == "ml.g4dn.xlarge"


@pytest.mark.parametrize("status", ["Failed", "Deleting"])
def test_failed_or_deleting_notebook_is_refused(aws: Aws, status: str) -> None:
    notebook(aws, status)
    with pytest.raises(CloudError, match=status):
        move(aws, stop=True)
    assert "update_notebook_instance" not in aws.stand_in.calls


def test_dry_run_and_cli(aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    notebook(aws, "InService")
    out = move(aws, stop=True, dry_run=True)
    assert "sagemaker.stop_notebook_instance" in out
    assert '"DisassociateAcceleratorTypes": true' in out
    assert described(aws)["NotebookInstanceStatus"] == "InService"
    monkeypatch.setattr(cli_common, "make_clients", lambda args: aws.clients)
    monkeypatch.setattr(cli_common, "make_waiter", lambda args: aws.waiter())
    argv = ["migrate", "notebook", "lab", "--instance-type", "ml.t3.medium"]
    assert main(argv) == 1
    assert "--stop" in capsys.readouterr().err
    assert main(argv + ["--stop"]) == 0
    assert "ml.t3.medium" in capsys.readouterr().out
    assert main(argv) == 0  # already there: nothing to do
    assert "already ml.t3.medium" in capsys.readouterr().out
