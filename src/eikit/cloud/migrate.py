"""``eikit migrate endpoint``: move an endpoint to another instance type, off EI, safely.

The steps are AWS's for EI users: a new EndpointConfig with the new instance type (and no
``AcceleratorType``), autoscaling removed, UpdateEndpoint, wait for ``InService``, the same
autoscaling put back. eikit adds: preflight checks before anything changes; the eikit image
for the new instance type; SageMaker's blue/green deployment with canary or linear traffic
shifting, baking periods and auto-rollback on alarms eikit makes (and deletes after), so a
bad new fleet is rolled back to the old fleet while it still runs; a parity check of the
new fleet's answers against the old one's; a state file written after each step.

Every step reads what is there before it acts, so ``resume`` and ``rollback`` can start
from any point, even from a run killed in the middle of a step. Neither ever leaves the
endpoint without the autoscaling it had: a rollback that AWS refuses (an EI config cannot be
deployed again) puts back what it removed and says so.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, List, TextIO

from eikit.cloud import guardrails, parity, scaling
from eikit.cloud.aws import Call, Clients, CloudError, Waiter, describe_error
from eikit.cloud.compiling import compile_models
from eikit.cloud.deploy import failure_text
from eikit.cloud.plan import Options, Plan, plan_migration, show_plan, update_params
from eikit.cloud.rollback import Rollback
from eikit.cloud.runner import SETTLED, Runner, exists
from eikit.cloud.state import StateFile

__all__ = ["Migration", "Options", "Plan", "plan_migration", "show_plan", "start"]


class ParityFailed(CloudError):
    """The new endpoint answers differently and the old config cannot come back."""


class Migration(Runner):
    """Runs (or resumes) one migration recorded in a state file."""

    def __init__(
        self, clients: Clients, state: StateFile, waiter: Waiter, timeout: float, out: TextIO
    ) -> None:
        super().__init__(clients, state, waiter, timeout, out)
        self._baked: List[str] = []  # the baking periods already checked for parity

    # --- forward ------------------------------------------------------------------------

    def execute(self) -> int:
        """Carry the migration on from where it is; 0 done, 1 failed (and rolled back)."""
        step = self.state.step
        if step in ("done", "rolled-back"):
            self.say("migration of %s is already %s" % (self.s["endpoint"], step))
            return 0
        if step == "rolling-back":
            raise CloudError(
                "a rollback was interrupted: run `eikit migrate rollback --state %s` to finish it"
                % self.state.path
            )
        self.check_account()
        if self.s.get("failure"):
            return self._rollback_after_failure()
        for name in self.s["steps"]:
            if self.state.completed(name):
                continue
            try:
                ok = getattr(self, "step_" + name.replace("-", "_"))()
            except ParityFailed as exc:
                self.state.advance("done", "parity failed; the old config cannot come back")
                self.say(str(exc))
                return 1
            if not ok:
                return self._rollback_after_failure()
            self.state.advance(name)
        self.state.advance("done", "migrated")
        self._summary()
        return 0

    def step_compile(self) -> bool:
        compile_models(
            self.clients,
            self.s["compile"],
            self.waiter,
            self.timeout,
            self.say,
            "`eikit migrate resume --state %s` tries again, `eikit migrate rollback --state %s` "
            "ends this run" % (self.state.path, self.state.path),
        )
        return True

    def step_create(self) -> bool:
        sm = self.clients.sagemaker
        for model in self.s["models"]:
            if not exists(functools.partial(sm.describe_model, ModelName=model["ModelName"])):
                self.run(Call("sagemaker", "create_model", model))
        config = self.s["config"]
        name = config["EndpointConfigName"]
        if not exists(functools.partial(sm.describe_endpoint_config, EndpointConfigName=name)):
            self.run(Call("sagemaker", "create_endpoint_config", config))
        return True

    def _samples(self) -> List[parity.Sample]:
        p = self.s["parity"]
        return parity.load_samples(Path(p["samples"]), p.get("content_type"), p.get("accept"))

    def step_baseline(self) -> bool:
        p = self.s["parity"]
        now = self.describe()
        if (now.get("EndpointStatus"), now.get("EndpointConfigName")) != (
            "InService",
            self.s["old_config"],
        ):
            raise CloudError(
                "the baseline must come from the old config %s; the endpoint is %s on %s"
                % (self.s["old_config"], now.get("EndpointStatus"), now.get("EndpointConfigName"))
            )
        samples = self._samples()
        self.say(
            "  recording the answers of %s to %d sample(s)" % (self.s["endpoint"], len(samples))
        )
        baseline = parity.record(
            self.clients, self.s["endpoint"], self.s["old_config"], samples, p["repeat"]
        )
        parity.save(Path(p["baseline"]), baseline)
        times = [t for sample in baseline["samples"] for t in sample["latency_ms"]]
        p["before"] = parity.percentiles(times)
        g = self.s.get("guardrails")
        if g and g.get("latency_from_baseline") and p["before"]:
            # a model latency alarm at 3 x the old p99 (client-side, so an upper bound)
            g["latency_ms"] = round(max(100.0, 3 * p["before"]["p99"]), 1)
            for alarm in g["alarms"]:
                if alarm["MetricName"] == "ModelLatency":
                    alarm["Threshold"] = g["latency_ms"] * 1000.0
        self.say(
            "  baseline: %d sample(s) in %s, latency p50 %.2f ms p99 %.2f ms"
            % (len(samples), p["baseline"], p["before"]["p50"], p["before"]["p99"])
        )
        return True

    def step_guardrails(self) -> bool:
        there = guardrails.existing(self.clients, self._alarm_names())
        for alarm in self.s["guardrails"]["alarms"]:
            if alarm["AlarmName"] not in there:
                self.run(Call("cloudwatch", "put_metric_alarm", alarm, alarm["AlarmName"]))
        stop = guardrails.stop_alarm(self.s["endpoint"])
        states = self.clients.cloudwatch.describe_alarms(AlarmNames=[stop])["MetricAlarms"]
        if states and states[0].get("StateValue") == "ALARM":  # left over from a rollback
            self.run(
                Call(
                    "cloudwatch",
                    "set_alarm_state",
                    {"AlarmName": stop, "StateValue": "OK", "StateReason": "migration starts"},
                )
            )
        return True

    def step_remove_scaling(self) -> bool:
        scaling.remove(self.clients, self.s["endpoint"], self._variants(), self.run)
        return True

    def step_update(self) -> bool:
        now = self.describe()
        if now.get("EndpointStatus") not in SETTLED:
            pending = (now.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
            if pending == self.s["new_config"]:
                return True  # called already (the run before was stopped after the call)
            now = self.settle()
        if (now.get("EndpointStatus"), now.get("EndpointConfigName")) == (
            "InService",
            self.s["new_config"],
        ):
            return True
        try:
            self.run(Call("sagemaker", "update_endpoint", update_params(self.s)))
        except CloudError as exc:
            self.s["failure"] = "UpdateEndpoint refused: %s" % describe_error(exc.__cause__ or exc)
            self.say("  " + self.s["failure"])
            self.state.save()
            return False
        return True

    def step_wait(self) -> bool:
        check = self._bake_check if self.s.get("parity") and self.s.get("guardrails") else None
        answer = self.settle(check)
        done = (answer.get("EndpointStatus"), answer.get("EndpointConfigName")) == (
            "InService",
            self.s["new_config"],
        )
        if done and not self.s.get("failure"):
            return True
        # a parity failure while baking that SageMaker did not act on in time fails it too
        if not self.s.get("failure"):
            back = answer.get("EndpointConfigName") == self.s["old_config"]
            self.s["failure"] = (
                "SageMaker rolled the update back to the old fleet:\n" if back else ""
            ) + failure_text(answer, self.clients.region)
        self.say(self.s["failure"])
        self.state.save()
        return False

    def _bake_check(self, answer: Dict[str, Any]) -> None:
        """While SageMaker bakes the new fleet, replay the samples; trip the stop alarm
        (SageMaker then shifts traffic back to the old fleet) when the answers differ."""
        pending = answer.get("PendingDeploymentSummary") or {}
        if answer.get("EndpointStatus") != "Updating" or self.s.get("failure"):
            return
        if pending.get("EndpointConfigName") != self.s["new_config"]:
            return
        baking = [
            "%s@%s" % (v.get("VariantName"), status.get("StartTime"))
            for v in pending.get("ProductionVariants", [])
            for status in v.get("VariantStatus", [])
            if status.get("Status") == "Baking"
        ]
        if not baking or baking[0] in self._baked:
            return
        self._baked.append(baking[0])
        p = self.s["parity"]
        report = parity.check(
            self.clients,
            self.s["endpoint"],
            parity.load(Path(p["baseline"])),
            self._samples(),
            p["rtol"],
            p["atol"],
        )
        self.say("  new fleet baking: " + "\n  ".join(report.lines(p["rtol"], p["atol"])))
        if report.ok:
            return
        self.s["failure"] = (
            "the new fleet answered differently while baking: SageMaker shifts traffic back "
            "to the old fleet (eikit's stop alarm)"
        )
        self.state.save()  # first: a run stopped now still knows why
        for call in guardrails.stop_calls(self.s["endpoint"], "eikit: parity mismatch"):
            self.run(call)

    def step_restore_scaling(self) -> bool:
        scaling.restore(self.clients, self.s["endpoint"], self.s["new_scaling"], self.run)
        scaling.restore_alarms(
            self.clients, self.s["endpoint"], self.s["alarms"], self._variants(), self.run
        )
        return True

    def step_verify(self) -> bool:
        p = self.s["parity"]
        report = parity.check(
            self.clients,
            self.s["endpoint"],
            parity.load(Path(p["baseline"])),
            self._samples(),
            p["rtol"],
            p["atol"],
            p["repeat"],
        )
        p["report"] = report.to_json()
        lines = report.lines(p["rtol"], p["atol"])
        self.state.save()
        if report.ok:
            for line in lines:
                self.say(line)
            return True
        if self.s.get("old_redeployable"):
            self.s["failure"] = "\n".join(lines)
            self.state.save()
            return False
        raise ParityFailed(
            "\n".join(lines)
            + "\nthe old config %s cannot be deployed again (Elastic Inference), so the endpoint "
            "stays on %s with its autoscaling: fix the model or image and migrate again"
            % (self.s["old_config"], self.s["new_config"])
        )

    def _summary(self) -> None:
        s = self.s
        back = (
            "`eikit migrate rollback --state %s` goes back to it" % self.state.path
            if s.get("old_redeployable")
            else "it cannot be deployed again (Elastic Inference), so there is no rollback now"
        )
        self.say(
            "endpoint %s is InService on %s (%s) with its autoscaling. The old config %s is kept; "
            "%s." % (s["endpoint"], s["new_config"], s["instance_type"], s["old_config"], back)
        )

    # --- back ---------------------------------------------------------------------------

    def step_remove_guardrails(self) -> bool:
        self.remove_guardrails()
        return True

    def rollback(self) -> int:
        return Rollback(self.clients, self.state, self.waiter, self.timeout, self.out).rollback()

    def _rollback_after_failure(self) -> int:
        self.say("the migration failed: going back to %s" % self.s["old_config"])
        self.rollback()
        return 1


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
