"""``eikit migrate notebook``: a notebook instance onto another type, its EI accelerator off.

AWS changes a notebook instance's type only while it is ``Stopped``. This stops it when asked
(``--stop``) and waits, calls UpdateNotebookInstance with the new type and
``DisassociateAcceleratorTypes``, waits for the update to finish and, with ``--start``,
starts it again.
"""

from __future__ import annotations

from typing import Any, Dict, List, TextIO

from eikit.cloud.aws import Call, Clients, CloudError, Waiter, describe_error
from eikit.cloud.images import instance_family

KERNELS = (
    "Pick the kernel of your framework without 'amazonei' in its name, e.g. "
    "conda_pytorch_p310, conda_tensorflow2_p310 or conda_mxnet_p38 (the newest conda_* "
    "kernel listed): the amazonei_* kernels need the EI accelerator this instance no longer "
    "has."
)
GPU_HINT = (
    "This type has an NVIDIA GPU: models that ran on EI through torch.jit / torcheia load "
    "with torch.jit.load and move to it with .to('cuda')."
)


def _describe(clients: Clients, name: str) -> Dict[str, Any]:
    try:
        return dict(clients.sagemaker.describe_notebook_instance(NotebookInstanceName=name))
    except Exception as exc:
        raise CloudError(
            "cannot read notebook instance %s: %s" % (name, describe_error(exc))
        ) from exc


def kernel_advice(instance_type: str) -> str:
    family = instance_family(instance_type)
    gpu = family.startswith(("g4", "g5", "g6", "p2", "p3", "p4", "p5"))
    return KERNELS + (" " + GPU_HINT if gpu else "")


def plan_notebook(
    described: Dict[str, Any], instance_type: str, stop: bool, start: bool
) -> List[Call]:
    """The calls for a notebook in its described state; refuses states it cannot move from."""
    name = described["NotebookInstanceName"]
    status = described.get("NotebookInstanceStatus")
    instance_family(instance_type)
    if instance_type.split(".")[1].startswith("eia"):
        raise CloudError("%s is an EI accelerator, not a notebook instance type" % instance_type)
    calls: List[Call] = []
    if status == "InService" or status == "Pending":
        if not stop:
            raise CloudError(
                "notebook instance %s is %s; its type changes only while Stopped. Stop it "
                "(save your work first), or pass --stop to stop it and wait" % (name, status)
            )
        calls.append(Call("sagemaker", "stop_notebook_instance", {"NotebookInstanceName": name}))
    elif status in ("Failed", "Deleting"):
        raise CloudError(
            "notebook instance %s is %s%s: eikit moves only a Stopped (or running, with "
            "--stop) notebook"
            % (
                name,
                status,
                " (%s)" % described["FailureReason"] if described.get("FailureReason") else "",
            )
        )
    elif status not in ("Stopped", "Stopping", "Updating"):
        raise CloudError("notebook instance %s is in an unknown state %r" % (name, status))
    update: Dict[str, Any] = {"NotebookInstanceName": name, "InstanceType": instance_type}
    if described.get("AcceleratorTypes"):
        update["DisassociateAcceleratorTypes"] = True
    calls.append(Call("sagemaker", "update_notebook_instance", update))
    if start:
        calls.append(Call("sagemaker", "start_notebook_instance", {"NotebookInstanceName": name}))
    return calls


def migrate_notebook(
    clients: Clients,
    name: str,
    instance_type: str,
    stop: bool,
    start: bool,
    waiter: Waiter,
    timeout: float,
    out: TextIO,
    dry_run: bool = False,
) -> int:
    described = _describe(clients, name)
    status = described.get("NotebookInstanceStatus")
    if described.get("InstanceType") == instance_type and not described.get("AcceleratorTypes"):
        out.write(
            "notebook instance %s is already %s with no EI accelerator\n" % (name, instance_type)
        )
        return 0
    calls = plan_notebook(described, instance_type, stop, start)
    out.write(
        "notebook instance %s: %s%s, %s -> %s, no accelerator\n"
        % (
            name,
            described.get("InstanceType"),
            " + " + ", ".join(described["AcceleratorTypes"])
            if described.get("AcceleratorTypes")
            else "",
            status,
            instance_type,
        )
    )
    if dry_run:
        out.write("dry run: nothing changed; calls, in order (with a wait after each):\n")
        for call in calls:
            out.write(call.show() + "\n")
        return 0
    state = lambda: _describe(clients, name)  # noqa: E731
    status_of = lambda d: str(d.get("NotebookInstanceStatus"))  # noqa: E731
    what = "notebook instance %s" % name
    if status == "Pending":
        waiter.wait(what, state, status_of, ("InService",), ("Failed",), timeout, ("Pending",))
    for call in calls:
        if call.operation == "update_notebook_instance":
            now = waiter.wait(
                what, state, status_of, ("Stopped",), ("Failed",), timeout, ("Stopping", "Updating")
            )
            if now.get("NotebookInstanceStatus") != "Stopped":
                raise CloudError(
                    "%s is %s, not Stopped: not updated" % (what, now.get("NotebookInstanceStatus"))
                )
        out.write("%s.%s %s\n" % (call.service, call.operation, name))
        try:
            call.run(clients)
        except Exception as exc:
            raise CloudError("%s failed: %s" % (call.operation, describe_error(exc))) from exc
        if call.operation == "update_notebook_instance":
            now = waiter.wait(
                what, state, status_of, ("Stopped",), ("Failed",), timeout, ("Updating",)
            )
            if now.get("NotebookInstanceStatus") != "Stopped":
                raise CloudError(
                    "the update left %s %s: %s"
                    % (what, now.get("NotebookInstanceStatus"), now.get("FailureReason"))
                )
    if start:
        now = waiter.wait(
            what, state, status_of, ("InService",), ("Failed",), timeout, ("Pending",)
        )
        if now.get("NotebookInstanceStatus") != "InService":
            raise CloudError("%s did not start: %s" % (what, now.get("FailureReason")))
    final = _describe(clients, name)
    out.write(
        "notebook instance %s is %s on %s%s\n"
        % (
            name,
            final.get("NotebookInstanceStatus"),
            final.get("InstanceType"),
            " with no accelerator"
            if not final.get("AcceleratorTypes")
            else " (accelerators still listed: %s)" % final["AcceleratorTypes"],
        )
    )
    out.write(kernel_advice(instance_type) + "\n")
    return 0
