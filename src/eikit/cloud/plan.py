"""The plan of an endpoint migration: read the endpoint, its config, models and autoscaling,
check what the move needs, and say every call it will make (``--dry-run`` prints this).

Nothing here changes the account: the plan is the state file's first content.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO

from eikit.cloud import scaling
from eikit.cloud.aws import Call, Clients, CloudError, describe_error, resource_name
from eikit.cloud.images import build_command, parse_image, target_for

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
            "variant %s: autoscaling %d-%d instances, scaling policies: %d, scheduled actions: %d; "
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
