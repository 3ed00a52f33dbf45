"""``eikit migrate endpoint``: move an endpoint to another instance type, off EI, safely.

The steps are AWS's for EI users: a new EndpointConfig with the new instance type (and no
``AcceleratorType``), autoscaling removed, UpdateEndpoint, wait for ``InService``, the same
autoscaling put back. eikit adds: the plan is read and checked before anything changes; the
model's image is swapped for the eikit image that serves on the new instance type; every
step is recorded in a state file first; a failed update goes back to the old config and
gets its autoscaling back; ``resume`` and ``rollback`` finish or undo an interrupted run.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

from eikit.cloud import scaling
from eikit.cloud.aws import (
    Call,
    Clients,
    CloudError,
    Waiter,
    WaitTimeout,
    describe_error,
    is_not_found,
    resource_name,
)
from eikit.cloud.deploy import failure_text, wait_in_service
from eikit.cloud.images import build_command, parse_image, target_for
from eikit.cloud.state import StateFile

CONFIG_KEYS = (  # CreateEndpointConfig parameters copied from the old config as they are
    "DataCaptureConfig",
    "KmsKeyId",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
)
MODEL_KEYS = ("ExecutionRoleArn", "VpcConfig", "EnableNetworkIsolation")
CONTAINER_KEYS = (
    "ContainerHostname",
    "ImageConfig",
    "Mode",
    "ModelDataUrl",
    "ModelDataSource",
    "Environment",
    "ModelPackageName",
    "InferenceSpecificationName",
    "MultiModelConfig",
)
VARIANT_DROPPED = ("AcceleratorType", "InferenceAmiVersion")


@dataclass
class Plan:
    """What a migration reads and will do: the state file's content and readable notes."""

    state: Dict[str, Any]
    notes: List[str] = field(default_factory=list)

    def calls(self) -> List[Call]:
        s = self.state
        calls = [
            Call("sagemaker", "create_model", m, "image for %s" % s["target"]) for m in s["models"]
        ]
        calls.append(Call("sagemaker", "create_endpoint_config", s["config"]))
        calls += scaling.remove_calls(s["scaling"])
        calls.append(
            Call(
                "sagemaker",
                "update_endpoint",
                {"EndpointName": s["endpoint"], "EndpointConfigName": s["new_config"]},
            )
        )
        calls += scaling.restore_calls(s["scaling"])
        return calls


def _container_image(clients: Clients, image: str, region: str) -> Optional[str]:
    """Why ``image`` cannot be used (an ECR image that is not there), or None."""
    parsed = parse_image(image)
    if parsed is None or parsed.ecr is None:
        return None
    _, ecr_region, repository = parsed.ecr
    try:
        clients.ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": parsed.tag}])
    except Exception as exc:
        if "NotFound" in describe_error(exc):
            return "%s is not in ECR (%s)" % (image, describe_error(exc).split(":")[0])
        return "cannot check %s: %s" % (image, describe_error(exc))
    return None


def _new_image(
    clients: Clients, current: str, target: str, image: Optional[str], region: str
) -> Optional[str]:
    """The image the model needs on ``target`` (None: keep ``current``), or refuse."""
    if image:
        return image if image != current else None
    parsed = parse_image(current)
    if parsed is None:
        raise CloudError(
            "the model's image %s is not an eikit image, so eikit cannot tell which image "
            "serves on a %s instance: pass --image URI" % (current, target)
        )
    if parsed.target == target:
        return None
    wanted = parsed.with_target(target)
    problem = _container_image(clients, wanted.uri, region)
    if problem is not None:
        raise CloudError(
            "the %s instance needs the eikit %s image %s, but %s. Build and push it first:\n"
            "  %s" % (target, target, wanted.uri, problem, build_command(wanted, region))
        )
    return wanted.uri


def plan_migration(
    clients: Clients,
    endpoint: str,
    instance_type: str,
    image: Optional[str],
    suffix: str,
) -> Plan:
    """Read the endpoint, its config, models and autoscaling; refuse what cannot be done."""
    target = target_for(instance_type)
    sm = clients.sagemaker
    try:
        described = dict(sm.describe_endpoint(EndpointName=endpoint))
    except Exception as exc:
        raise CloudError("cannot read endpoint %s: %s" % (endpoint, describe_error(exc))) from exc
    status = described.get("EndpointStatus")
    if status != "InService":
        raise CloudError(
            "endpoint %s is %s; a migration starts only from InService%s"
            % (
                endpoint,
                status,
                " (an unfinished migration? see `eikit migrate resume|rollback`)"
                if status == "Updating"
                else "",
            )
        )
    old_config = described["EndpointConfigName"]
    config = dict(sm.describe_endpoint_config(EndpointConfigName=old_config))
    region = clients.region
    notes: List[str] = []
    current_counts = {
        v["VariantName"]: v.get("CurrentInstanceCount") or v.get("DesiredInstanceCount")
        for v in described.get("ProductionVariants", [])
    }
    variant_names = [v["VariantName"] for v in config["ProductionVariants"]]
    recorded = scaling.record(clients, endpoint, variant_names)
    models: List[Dict[str, Any]] = []
    swapped: Dict[str, str] = {}
    variants: List[Dict[str, Any]] = []
    for old in config["ProductionVariants"]:
        name = old["VariantName"]
        if "ServerlessConfig" in old:
            raise CloudError("variant %s is serverless: it has no instance type to change" % name)
        variant = {k: copy.deepcopy(v) for k, v in old.items() if k not in VARIANT_DROPPED}
        if old.get("AcceleratorType"):
            notes.append("variant %s: EI accelerator %s removed" % (name, old["AcceleratorType"]))
        variant["InstanceType"] = instance_type
        count = current_counts.get(name) or old.get("InitialInstanceCount") or 1
        if name in recorded:
            target_limits = recorded[name]["target"]
            count = max(target_limits["MinCapacity"], min(count, target_limits["MaxCapacity"]))
        variant["InitialInstanceCount"] = int(count)
        model_name = old["ModelName"]
        if model_name not in swapped:
            swapped[model_name] = _swap_model(
                clients, model_name, target, image, region, suffix, models, notes
            )
        variant["ModelName"] = swapped[model_name]
        notes.append(
            "variant %s: %s x %s -> %d x %s, model %s"
            % (
                name,
                old.get("InitialInstanceCount"),
                old.get("InstanceType"),
                variant["InitialInstanceCount"],
                instance_type,
                variant["ModelName"],
            )
        )
        variants.append(variant)
    if target == "neuron":
        notes.append(
            "inf1/inf2: the model must be compiled for Neuron (torch-neuron / torch-neuronx); "
            "an uncompiled model falls back to the instance's CPU"
        )
    new_config = resource_name(old_config, suffix)
    create_config: Dict[str, Any] = {
        "EndpointConfigName": new_config,
        "ProductionVariants": variants,
    }
    for key in CONFIG_KEYS:
        if key in config:
            create_config[key] = copy.deepcopy(config[key])
    shadows = config.get("ShadowProductionVariants")
    if shadows:
        create_config["ShadowProductionVariants"] = [
            dict(
                {k: v for k, v in s.items() if k not in VARIANT_DROPPED}, InstanceType=instance_type
            )
            for s in shadows
        ]
    for variant_name, saved in sorted(recorded.items()):
        t = saved["target"]
        notes.append(
            "variant %s: autoscaling %d-%d instances, %d policies, %d scheduled actions: "
            "removed before the update, restored after"
            % (
                variant_name,
                t["MinCapacity"],
                t["MaxCapacity"],
                len(saved["policies"]),
                len(saved["scheduled"]),
            )
        )
    state = {
        "kind": "endpoint-migration",
        "endpoint": endpoint,
        "region": region,
        "account": clients.account(),
        "instance_type": instance_type,
        "target": target,
        "old_config": old_config,
        "new_config": new_config,
        "models": models,
        "config": create_config,
        "scaling": recorded,
        "old_variants": config["ProductionVariants"],
    }
    return Plan(state, notes)


def _swap_model(
    clients: Clients,
    model_name: str,
    target: str,
    image: Optional[str],
    region: str,
    suffix: str,
    models: List[Dict[str, Any]],
    notes: List[str],
) -> str:
    """The model the new config uses: the same one, or a copy with the target's image."""
    described = dict(clients.sagemaker.describe_model(ModelName=model_name))
    containers = [described["PrimaryContainer"]] if described.get("PrimaryContainer") else []
    containers = containers or list(described.get("Containers", []))
    if len(containers) != 1:
        if image:
            raise CloudError(
                "model %s has %d containers (an inference pipeline); eikit swaps one image only"
                % (model_name, len(containers))
            )
        notes.append("model %s: %d containers, kept as it is" % (model_name, len(containers)))
        return model_name
    current = containers[0]["Image"]
    new_image = _new_image(clients, current, target, image, region)
    if new_image is None:
        notes.append("model %s: image %s kept (it serves on %s)" % (model_name, current, target))
        return model_name
    if image:
        problem = _container_image(clients, new_image, region)
        if problem is not None:
            raise CloudError("--image: %s" % problem)
    container = {k: copy.deepcopy(v) for k, v in containers[0].items() if k in CONTAINER_KEYS}
    container["Image"] = new_image
    new_name = resource_name(model_name, suffix)
    create: Dict[str, Any] = {"ModelName": new_name, "PrimaryContainer": container}
    for key in MODEL_KEYS:
        if described.get(key) not in (None, {}, []):
            create[key] = copy.deepcopy(described[key])
    models.append(create)
    notes.append(
        "model %s: new model %s with image %s (was %s)" % (model_name, new_name, new_image, current)
    )
    return new_name


def show_plan(plan: Plan, out: TextIO) -> None:
    s = plan.state
    out.write(
        "migrate endpoint %s (account %s, %s): %s -> %s on %s\n"
        % (
            s["endpoint"],
            s["account"],
            s["region"],
            s["old_config"],
            s["new_config"],
            s["instance_type"],
        )
    )
    for note in plan.notes:
        out.write("  - %s\n" % note)
    out.write("calls, in order:\n")
    for number, call in enumerate(plan.calls(), 1):
        out.write("%2d. %s\n" % (number, call.show().replace("\n", "\n    ")))
    out.write("then wait for InService (10-15 minutes is normal)\n")


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
