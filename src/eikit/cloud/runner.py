"""What every part of a migration run shares: its clients and state file, the AWS calls it
makes (each printed, and a failure said with how to resume or roll back), the account and
region check, and waiting for the endpoint to settle with the deployment's stage shown.
"""

from __future__ import annotations

from typing import Any, Dict, List, TextIO

from eikit.cloud import guardrails
from eikit.cloud.aws import (
    Call,
    Clients,
    CloudError,
    Waiter,
    WaitTimeout,
    describe_error,
    is_not_found,
)
from eikit.cloud.state import StateFile

SETTLED = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")


class Runner:
    """One migration's clients, state file, calls and waits."""

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
        self.say("  %s.%s %s" % (call.service, call.operation, call.why or brief(call.params)))
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

    def check_account(self) -> None:
        """Act only on the account and region the state file was written for."""
        account, region = self.clients.account(), self.clients.region
        if account != self.s["account"] or region != self.s["region"]:
            raise CloudError(
                "%s is a migration in account %s, %s; these credentials are for account %s, %s: "
                "use the profile and region of that account"
                % (self.state.path, self.s["account"], self.s["region"], account, region)
            )

    def describe(self) -> Dict[str, Any]:
        return dict(self.clients.sagemaker.describe_endpoint(EndpointName=self.s["endpoint"]))

    def settle(self, each: Any = None) -> Dict[str, Any]:
        """Wait while the endpoint is Creating/Updating/RollingBack...; its last description."""
        self.say(
            "waiting for the endpoint to settle (10-15 minutes is normal, more with baking "
            "periods; timeout %d min)" % (self.timeout // 60)
        )
        try:
            return self.waiter.wait(
                "endpoint %s" % self.s["endpoint"],
                self.describe,
                status,
                done=("InService",),
                failed=SETTLED[1:],
                timeout=self.timeout,
                each=each,
            )
        except WaitTimeout as exc:
            raise CloudError(
                "%s. Nothing was rolled back: `eikit migrate resume --state %s` waits again, "
                "`eikit migrate rollback --state %s` goes back to %s"
                % (exc, self.state.path, self.state.path, self.s["old_config"])
            ) from exc

    def _alarm_names(self) -> List[str]:
        return [a["AlarmName"] for a in (self.s.get("guardrails") or {}).get("alarms", [])]

    def _variants(self) -> List[str]:
        return sorted(v["VariantName"] for v in self.s["old_variants"])

    def remove_guardrails(self) -> bool:
        there = guardrails.existing(self.clients, self._alarm_names())
        if there:
            self.run(Call("cloudwatch", "delete_alarms", {"AlarmNames": there}, "guardrails"))
        return True


def status(answer: Dict[str, Any]) -> str:
    """``Updating (new fleet: Baking)`` while a deployment is under way."""
    status = str(answer.get("EndpointStatus"))
    pending = answer.get("PendingDeploymentSummary") or {}
    for variant in pending.get("ProductionVariants", [])[:1]:
        stages = [s.get("Status") for s in variant.get("VariantStatus", [])]
        if stages:
            return "%s (new fleet: %s)" % (status, ", ".join(map(str, stages)))
    return status


def exists(describe: Any) -> bool:
    try:
        describe()
    except Exception as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def brief(params: Dict[str, Any]) -> str:
    return " ".join(
        "%s=%s" % (k, v)
        for k, v in sorted(params.items())
        if k.endswith("Name") or k == "ResourceId"
    )
