"""``eikit migrate endpoint``: move an endpoint to another instance type, off EI, safely.

The steps are AWS's for EI users: a new EndpointConfig with the new instance type (and no
``AcceleratorType``), autoscaling removed, UpdateEndpoint, wait for ``InService``, the same
autoscaling put back. eikit adds: the plan is read and checked before anything changes; the
model's image is swapped for the eikit image that serves on the new instance type; every
step is recorded in a state file first; a failed update goes back to the old config and
gets its autoscaling back; ``resume`` and ``rollback`` finish or undo an interrupted run.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, TextIO

from eikit.cloud import scaling
from eikit.cloud.aws import (
    Call,
    Clients,
    CloudError,
    Waiter,
    WaitTimeout,
    describe_error,
    is_not_found,
)
from eikit.cloud.deploy import failure_text, wait_in_service
from eikit.cloud.plan import Plan, plan_migration, show_plan

__all__ = ["Migration", "Plan", "plan_migration", "show_plan", "start"]
from eikit.cloud.state import StateFile


class Migration:
    """Runs (or resumes, or rolls back) one migration recorded in a state file."""

    def __init__(
        self, clients: Clients, state: StateFile, waiter: Waiter, timeout: float, out: TextIO
    ) -> None:
        self.clients = clients
        self.state = state
        self.waiter = waiter
        self.timeout = timeout
        self.out = out

    @property
    def s(self) -> Dict[str, Any]:
        return self.state.data

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self, call: Call) -> Any:
        self.say("  %s.%s %s" % (call.service, call.operation, call.why or _brief(call.params)))
        try:
            return call.run(self.clients)
        except Exception as exc:
            raise CloudError(
                "%s.%s failed: %s (step %s; `eikit migrate resume --state %s` retries, "
                "`eikit migrate rollback --state %s` undoes)"
                % (
                    call.service,
                    call.operation,
                    describe_error(exc),
                    self.state.step,
                    self.state.path,
                    self.state.path,
                )
            ) from exc

    # --- forward ------------------------------------------------------------------------

    def execute(self) -> int:
        """Carry the migration on from the recorded step; 0 done, 1 failed and rolled back."""
        step = self.state.step
        if step in ("done", "rolled-back"):
            self.say("migration of %s is already %s" % (self.s["endpoint"], step))
            return 0
        if step == "rolling-back":
            raise CloudError(
                "a rollback was interrupted: run `eikit migrate rollback` to finish it"
            )
        if step == "planned":
            self._create()
            self.state.advance("config-created", "models and endpoint config created")
        if self.state.step == "config-created":
            self._remove_scaling()
            self.state.advance("scaling-removed", "autoscaling deregistered")
        if self.state.step == "scaling-removed":
            ok = self._update()
            if not ok:
                return self._rollback_after_failure()
        if self.state.step == "updating" and not self._wait_updated():
            return self._rollback_after_failure()
        if self.state.step == "updated":
            self._restore_scaling()
            self.state.advance("done", "autoscaling restored")
        self.say(
            "endpoint %s is InService on %s (%s). The old config %s is kept: "
            "`eikit migrate rollback --state %s` goes back to it."
            % (
                self.s["endpoint"],
                self.s["new_config"],
                self.s["instance_type"],
                self.s["old_config"],
                self.state.path,
            )
        )
        return 0

    def _create(self) -> None:
        sm = self.clients.sagemaker
        for model in self.s["models"]:
            if not _exists(functools.partial(sm.describe_model, ModelName=model["ModelName"])):
                self.run(Call("sagemaker", "create_model", model))
        config = self.s["config"]
        if not _exists(
            lambda: sm.describe_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
        ):
            self.run(Call("sagemaker", "create_endpoint_config", config))

    def _remove_scaling(self) -> None:
        now = scaling.registered(self.clients, self.s["endpoint"], sorted(self.s["scaling"]))
        todo = {v: saved for v, saved in self.s["scaling"].items() if v in now}
        for call in scaling.remove_calls(todo):
            self.run(call)

    def _update(self) -> bool:
        sm = self.clients.sagemaker
        current = dict(sm.describe_endpoint(EndpointName=self.s["endpoint"]))
        if (
            current.get("EndpointConfigName") != self.s["new_config"]
            and current.get("EndpointStatus") != "Updating"
        ):
            try:
                self.run(
                    Call(
                        "sagemaker",
                        "update_endpoint",
                        {
                            "EndpointName": self.s["endpoint"],
                            "EndpointConfigName": self.s["new_config"],
                        },
                    )
                )
            except Exception as exc:
                self.s["failure"] = "UpdateEndpoint refused: %s" % describe_error(exc)
                self.say("  " + self.s["failure"])
                self.state.save()
                return False
        self.state.advance("updating", "UpdateEndpoint called")
        return True

    def _wait_updated(self) -> bool:
        self.say(
            "waiting for InService (10-15 minutes is normal; timeout %d min)" % (self.timeout // 60)
        )
        try:
            answer = wait_in_service(self.clients, self.s["endpoint"], self.waiter, self.timeout)
        except WaitTimeout as exc:
            raise CloudError(
                "%s. Nothing was rolled back: `eikit migrate resume --state %s` waits again, "
                "`eikit migrate rollback --state %s` goes back to %s"
                % (exc, self.state.path, self.state.path, self.s["old_config"])
            ) from exc
        if (
            answer.get("EndpointStatus") == "InService"
            and answer.get("EndpointConfigName") == self.s["new_config"]
        ):
            self.state.advance("updated", "InService on the new config")
            return True
        self.s["failure"] = failure_text(answer, self.clients.region)
        self.say(self.s["failure"])
        self.state.save()
        return False

    def _restore_scaling(self) -> None:
        for call in scaling.restore_calls(self.s["scaling"]):
            self.run(call)

    # --- back ---------------------------------------------------------------------------

    def _rollback_after_failure(self) -> int:
        self.say("the update failed: going back to %s" % self.s["old_config"])
        self.rollback()
        return 1

    def rollback(self) -> int:
        """Put the endpoint back on the old config and restore its autoscaling."""
        s = self.s
        if self.state.step == "rolled-back":
            self.say("the migration of %s was already rolled back" % s["endpoint"])
            return 0
        self.state.advance("rolling-back", s.get("failure", "rollback asked for"))
        sm = self.clients.sagemaker
        answer = dict(sm.describe_endpoint(EndpointName=s["endpoint"]))
        if answer.get("EndpointStatus") not in (
            "InService",
            "Failed",
            "OutOfService",
            "UpdateRollbackFailed",
        ):
            self.say(
                "endpoint is %s: waiting for it to settle first" % answer.get("EndpointStatus")
            )
            answer = wait_in_service(self.clients, s["endpoint"], self.waiter, self.timeout)
        if (
            answer.get("EndpointConfigName") != s["old_config"]
            or answer.get("EndpointStatus") != "InService"
        ):
            # autoscaling may be on the new variants (restored, or set by hand): off first
            now = scaling.record(
                self.clients, s["endpoint"], sorted(v["VariantName"] for v in s["old_variants"])
            )
            for call in scaling.remove_calls(now):
                self.run(call)
            try:
                self.run(
                    Call(
                        "sagemaker",
                        "update_endpoint",
                        {"EndpointName": s["endpoint"], "EndpointConfigName": s["old_config"]},
                        "back to the old config",
                    )
                )
            except Exception as exc:
                raise CloudError(
                    "rollback: UpdateEndpoint to %s was refused: %s. The endpoint is %s; "
                    "autoscaling is recorded in %s (restore it with `eikit migrate rollback` "
                    "once the endpoint can be updated)"
                    % (
                        s["old_config"],
                        describe_error(exc),
                        answer.get("EndpointStatus"),
                        self.state.path,
                    )
                ) from exc
            answer = wait_in_service(self.clients, s["endpoint"], self.waiter, self.timeout)
            if (
                answer.get("EndpointStatus") != "InService"
                or answer.get("EndpointConfigName") != s["old_config"]
            ):
                raise CloudError(
                    "rollback did not bring the endpoint back:\n"
                    + failure_text(answer, self.clients.region)
                )
        else:
            self.say(
                "endpoint %s is InService on the old config %s" % (s["endpoint"], s["old_config"])
            )
        self._restore_scaling()
        self.state.advance("rolled-back", "InService on the old config, autoscaling restored")
        left = [m["ModelName"] for m in s["models"]] + [s["new_config"]]
        self.say(
            "rolled back: endpoint %s is InService on %s with its autoscaling. Left in place "
            "for inspection: %s" % (s["endpoint"], s["old_config"], ", ".join(left))
        )
        return 0


def _exists(describe: Any) -> bool:
    try:
        describe()
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def _brief(params: Dict[str, Any]) -> str:
    return " ".join(
        "%s=%s" % (k, v)
        for k, v in sorted(params.items())
        if k.endswith("Name") or k == "ResourceId"
    )


def start(
    clients: Clients,
    plan: Plan,
    path: Path,
    waiter: Waiter,
    timeout: float,
    out: TextIO,
) -> int:
    state = StateFile.new(path, plan.state)
    out.write("state file: %s (resume or roll back from it if this run is interrupted)\n" % path)
    return Migration(clients, state, waiter, timeout, out).execute()
