"""``eikit migrate rollback``: back to the old config, or, when AWS will not have it, the
endpoint left where it is with its autoscaling.

While a blue/green update is under way the old fleet still runs: tripping eikit's stop alarm
makes SageMaker shift traffic back to it, nothing deployed again. Once the update has
finished, going back is UpdateEndpoint to the old config, with autoscaling removed first
(AWS refuses to change the instance type of a scaled variant) and recorded in the state
file, so that a refusal (an EI config: AWS no longer provisions Elastic Inference) puts it
back as it was. Every part reads the endpoint first, so a rollback that was itself stopped
can be run again.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Optional

from eikit.cloud import guardrails, scaling
from eikit.cloud.aws import Call, CloudError, describe_error
from eikit.cloud.deploy import failure_text
from eikit.cloud.runner import SETTLED, Runner, exists
from eikit.compile.neo import split_s3


class Rollback(Runner):
    """Rolls one migration back, from wherever it is."""

    def rollback(self) -> int:
        """Put the endpoint back on the old config with its autoscaling, or, when AWS refuses
        the old config, leave it where it is with the autoscaling it had; 0 rolled back."""
        s = self.s
        if self.state.step == "rolled-back":
            self.say("the migration of %s was already rolled back" % s["endpoint"])
            return 0
        self.check_account()
        self.state.advance("rolling-back", s.get("failure", "rollback asked for"))
        answer = self.describe()
        if answer.get("EndpointStatus") not in SETTLED:
            pending = (answer.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
            if pending == s["new_config"] and guardrails.existing(
                self.clients, [guardrails.stop_alarm(s["endpoint"])]
            ):
                self.say("the update is under way: asking SageMaker to shift back to the old fleet")
                for call in guardrails.stop_calls(s["endpoint"], "eikit migrate rollback"):
                    self.run(call)
            answer = self.settle()
        if (answer.get("EndpointStatus"), answer.get("EndpointConfigName")) != (
            "InService",
            s["old_config"],
        ):
            if not self._update_back(answer):
                return 1
        else:
            self.say(
                "endpoint %s is InService on the old config %s" % (s["endpoint"], s["old_config"])
            )
        scaling.restore(self.clients, s["endpoint"], s["scaling"], self.run)
        scaling.restore_alarms(self.clients, s["endpoint"], s["alarms"], self._variants(), self.run)
        self.remove_guardrails()
        s.pop("rollback_scaling", None)
        self.state.advance("rolled-back", "InService on the old config, autoscaling restored")
        left = self._left()
        self.say(
            "rolled back: endpoint %s is InService on %s with its autoscaling.%s"
            % (
                s["endpoint"],
                s["old_config"],
                " Left in place for inspection: %s" % ", ".join(left) if left else "",
            )
        )
        return 0

    def _left(self) -> List[str]:
        """What the run made that is kept: new models, config, compiled archives."""
        s, sm = self.s, self.clients.sagemaker
        left = [
            m["ModelName"]
            for m in s["models"]
            if exists(functools.partial(sm.describe_model, ModelName=m["ModelName"]))
        ]
        if exists(
            functools.partial(sm.describe_endpoint_config, EndpointConfigName=s["new_config"])
        ):
            left.append(s["new_config"])
        for job in (s.get("compile") or {}).get("jobs", []):
            bucket, key = split_s3(job["target"])
            if exists(functools.partial(self.clients.s3.head_object, Bucket=bucket, Key=key)):
                left.append(job["target"])
        return left

    def _update_back(self, answer: Dict[str, Any]) -> bool:
        """UpdateEndpoint to the old config, its autoscaling recorded first; False refused."""
        s = self.s
        if not s.get("old_redeployable"):
            self.say(
                "the old config uses Elastic Inference, which AWS no longer provisions: AWS will "
                "most likely refuse it; the autoscaling removed for the update is recorded in %s "
                "and put back if it does" % self.state.path
            )
        if s.get("rollback_scaling") is None:  # what the endpoint has now, kept if AWS refuses
            s["rollback_scaling"] = {
                "config": answer.get("EndpointConfigName"),
                "scaling": scaling.record(self.clients, s["endpoint"], self._variants()),
            }
            self.state.save()
        scaling.remove(self.clients, s["endpoint"], self._variants(), self.run)
        params = {"EndpointName": s["endpoint"], "EndpointConfigName": s["old_config"]}
        try:
            self.run(Call("sagemaker", "update_endpoint", params, "back to the old config"))
        except CloudError as exc:
            self._refused(describe_error(exc.__cause__ or exc))
            return False
        answer = self.settle()
        if (answer.get("EndpointStatus"), answer.get("EndpointConfigName")) != (
            "InService",
            s["old_config"],
        ):
            self._refused(failure_text(answer, self.clients.region))
            return False
        return True

    def _refused(self, why: str) -> None:
        """AWS would not go back: leave the endpoint where it is, with its autoscaling."""
        s = self.s
        answer = self.describe()
        kept = s.pop("rollback_scaling", None) or {}
        on_new = answer.get("EndpointConfigName") == s["new_config"]
        wanted: Optional[Dict[str, Any]] = kept.get("scaling")
        if on_new and not self.state.completed("restore-scaling"):
            wanted = s["new_scaling"]  # the run was stopped while putting it back: finish that
        elif not wanted:
            wanted = s["new_scaling"] if on_new else s["scaling"]
        scaling.restore(self.clients, s["endpoint"], wanted, self.run)
        scaling.restore_alarms(self.clients, s["endpoint"], s["alarms"], self._variants(), self.run)
        self.remove_guardrails()
        s["rollback_refused"] = why
        settled = answer.get("EndpointStatus") == "InService"
        self.state.advance(
            "done" if settled and on_new else "rolling-back", "rollback refused: %s" % why[:200]
        )
        self.say(
            "rollback refused: %s\nendpoint %s stays %s on %s, with its autoscaling put back.%s"
            % (
                why,
                s["endpoint"],
                answer.get("EndpointStatus"),
                answer.get("EndpointConfigName"),
                ""
                if s.get("old_redeployable")
                else " The old config uses Elastic Inference, which AWS no longer provisions: "
                "there is no going back to it once the old fleet is gone.",
            )
        )
