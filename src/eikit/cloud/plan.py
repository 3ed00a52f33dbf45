"""The plan of an endpoint migration: read the endpoint, its config, models and autoscaling,
run the preflight checks, and say every step and call it will make (``--dry-run`` prints it).

Nothing here changes the account: the plan is the state file's first content. A plan is a
list of named steps (``state["steps"]``) with notes and warnings, so a step can be added
(compiling the model for Neuron, say) without changing how a run, resume or rollback works.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO, Tuple

from eikit.cloud import guardrails, preflight, scaling
from eikit.cloud.aws import Call, Clients, CloudError, describe_error, resource_name
from eikit.cloud.images import instance_family, parse_image, target_for

CONFIG_KEYS = (  # CreateEndpointConfig parameters copied from the old config when set
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
# Families whose instances have local NVMe storage, where SageMaker takes no VolumeSizeInGB.
NVME_FAMILIES = ("c5d", "m5d", "r5d", "g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5")


@dataclass
class Options:
    """What the user asked for, beyond the endpoint and the instance type."""

    image: Optional[str] = None
    traffic: str = guardrails.DEFAULT_TRAFFIC
    samples: Optional[str] = None
    baseline: Optional[str] = None
    content_type: Optional[str] = None
    accept: Optional[str] = None
    rtol: float = 1e-5
    atol: float = 1e-6
    repeat: int = 3
    latency_ms: Optional[float] = None
    autoscale: Optional[Tuple[int, int, float]] = None  # min, max, invocations per instance


@dataclass
class Plan:
    """What a migration reads and will do: the state file's content and readable notes."""

    state: Dict[str, Any]
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def calls(self) -> List[Call]:
        """The calls a run makes from nothing, step by step (``--dry-run``)."""
        s = self.state
        calls: List[Call] = []
        for step in s["steps"]:
            if step == "create":
                calls += [
                    Call("sagemaker", "create_model", m, "image for %s" % s["target"])
                    for m in s["models"]
                ]
                calls.append(Call("sagemaker", "create_endpoint_config", s["config"]))
            elif step == "baseline":
                calls.append(Call("sagemaker-runtime", "invoke_endpoint", {}, "record answers"))
            elif step == "guardrails":
                calls += [
                    Call("cloudwatch", "put_metric_alarm", a, "guardrail")
                    for a in s["guardrails"]["alarms"]
                ]
            elif step == "remove-scaling":
                calls += scaling.remove_calls(s["scaling"])
            elif step == "update":
                calls.append(Call("sagemaker", "update_endpoint", update_params(s)))
            elif step == "restore-scaling":
                calls += scaling.restore_calls(s["new_scaling"])
                calls += [
                    Call("cloudwatch", "put_metric_alarm", a, "actions -> the new policies")
                    for a in s["alarms"]
                ]
            elif step == "remove-guardrails":
                names = [a["AlarmName"] for a in s["guardrails"]["alarms"]]
                calls.append(Call("cloudwatch", "delete_alarms", {"AlarmNames": names}))
            elif step == "verify":
                calls.append(Call("sagemaker-runtime", "invoke_endpoint", {}, "compare answers"))
        return calls


def update_params(s: Dict[str, Any]) -> Dict[str, Any]:
    params: Dict[str, Any] = {"EndpointName": s["endpoint"], "EndpointConfigName": s["new_config"]}
    deployment = (s.get("guardrails") or {}).get("deployment")
    if deployment:
        params["DeploymentConfig"] = deployment
    return params


def _set(value: Any) -> bool:
    """moto and LocalStack answer ``{}`` or ``[]`` for a setting that was never made."""
    return value not in (None, {}, [], "")


def _new_image(current: str, target: str, image: Optional[str]) -> Optional[str]:
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
    return parsed.with_target(target).uri


class _Planner:
    """Reads the endpoint and builds the state; one per plan."""

    def __init__(
        self, clients: Clients, endpoint: str, instance_type: str, suffix: str, opts: Options
    ) -> None:
        self.clients = clients
        self.endpoint = endpoint
        self.instance_type = instance_type
        self.suffix = suffix
        self.opts = opts
        self.target = target_for(instance_type)
        self.notes: List[str] = []
        self.warnings: List[str] = []
        self.models: List[Dict[str, Any]] = []
        self.swapped: Dict[str, str] = {}
        self.images: List[str] = []

    def variant(self, old: Dict[str, Any], count: int) -> Dict[str, Any]:
        variant = {k: copy.deepcopy(v) for k, v in old.items() if k not in VARIANT_DROPPED}
        if old.get("AcceleratorType"):
            self.notes.append(
                "variant %s: EI accelerator %s removed"
                % (old["VariantName"], old["AcceleratorType"])
            )
        if "VolumeSizeInGB" in variant and instance_family(self.instance_type) in NVME_FAMILIES:
            del variant["VolumeSizeInGB"]
            self.warnings.append(
                "variant %s: VolumeSizeInGB dropped: %s has NVMe instance storage, where "
                "SageMaker takes no EBS volume size" % (old["VariantName"], self.instance_type)
            )
        variant["InstanceType"] = self.instance_type
        variant["InitialInstanceCount"] = int(count)
        model_name = old["ModelName"]
        if model_name not in self.swapped:
            self.swapped[model_name] = self.swap_model(model_name)
        variant["ModelName"] = self.swapped[model_name]
        return variant

    def swap_model(self, model_name: str) -> str:
        """The model the new config uses: the same one, or a copy with the target's image."""
        described = dict(self.clients.sagemaker.describe_model(ModelName=model_name))
        containers = [described["PrimaryContainer"]] if described.get("PrimaryContainer") else []
        containers = containers or list(described.get("Containers", []))
        if len(containers) != 1:
            if self.opts.image:
                raise CloudError(
                    "model %s has %d containers (an inference pipeline); eikit swaps one image "
                    "only" % (model_name, len(containers))
                )
            self.notes.append(
                "model %s: %d containers, kept as it is" % (model_name, len(containers))
            )
            return model_name
        current = containers[0]["Image"]
        new_image = _new_image(current, self.target, self.opts.image)
        if new_image is None:
            self.notes.append(
                "model %s: image %s kept (it serves on %s)" % (model_name, current, self.target)
            )
            self.images.append(current)
            return model_name
        self.images.append(new_image)
        container = {
            k: copy.deepcopy(v) for k, v in containers[0].items() if k in CONTAINER_KEYS and _set(v)
        }
        container["Image"] = new_image
        new_name = resource_name(model_name, self.suffix)
        create: Dict[str, Any] = {"ModelName": new_name, "PrimaryContainer": container}
        for key in MODEL_KEYS:
            if _set(described.get(key)):
                create[key] = copy.deepcopy(described[key])
        self.models.append(create)
        self.notes.append(
            "model %s: new model %s with image %s (was %s)"
            % (model_name, new_name, new_image, current)
        )
        return new_name


def plan_migration(
    clients: Clients,
    endpoint: str,
    instance_type: str,
    image: Optional[str],
    suffix: str,
    opts: Optional[Options] = None,
) -> Plan:
    """Read the endpoint, its config, models and autoscaling; refuse what cannot be done."""
    opts = opts or Options()
    if image:
        opts.image = image
    planner = _Planner(clients, endpoint, instance_type, suffix, opts)
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
    current_counts = {
        v["VariantName"]: v.get("CurrentInstanceCount") or v.get("DesiredInstanceCount")
        for v in described.get("ProductionVariants", [])
    }
    names = [v["VariantName"] for v in config["ProductionVariants"]]
    recorded = scaling.record(clients, endpoint, names)
    variants = []
    for old in config["ProductionVariants"]:
        name = old["VariantName"]
        count = current_counts.get(name) or old.get("InitialInstanceCount") or 1
        if name in recorded:
            limits = recorded[name]["target"]
            count = max(limits["MinCapacity"], min(count, limits["MaxCapacity"]))
        variant = planner.variant(old, count)
        planner.notes.append(
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
    shadows = [
        planner.variant(old, old.get("InitialInstanceCount") or 1)
        for old in config.get("ShadowProductionVariants") or []
    ]
    if planner.target == "neuron":
        planner.notes.append(
            "inf1/inf2: the model must be compiled for Neuron (torch-neuron / torch-neuronx); "
            "an uncompiled model falls back to the instance's CPU"
        )
    new_config = resource_name(old_config, suffix)
    create_config: Dict[str, Any] = {
        "EndpointConfigName": new_config,
        "ProductionVariants": variants,
    }
    for key in CONFIG_KEYS:
        if _set(config.get(key)):
            create_config[key] = copy.deepcopy(config[key])
    if shadows:
        create_config["ShadowProductionVariants"] = shadows
    new_scaling = _new_scaling(endpoint, recorded, names, opts, planner.notes)
    alarms = scaling.record_alarms(clients, recorded)
    state = {
        "kind": "endpoint-migration",
        "endpoint": endpoint,
        "region": clients.region,
        "account": clients.account(),
        "instance_type": instance_type,
        "target": planner.target,
        "old_config": old_config,
        "new_config": new_config,
        "models": planner.models,
        "config": create_config,
        "scaling": recorded,
        "new_scaling": new_scaling,
        "alarms": alarms,
        "old_variants": config["ProductionVariants"],
    }
    plan = Plan(state, planner.notes, planner.warnings)
    _guardrails(plan, variants, planner.models, opts)
    _parity(plan, opts)
    _preflight(clients, plan, planner.images, shadows)
    state["steps"] = _steps(state)
    return plan


def _new_scaling(
    endpoint: str,
    recorded: Dict[str, Dict[str, Any]],
    names: List[str],
    opts: Options,
    notes: List[str],
) -> Dict[str, Dict[str, Any]]:
    for variant in sorted(recorded):
        saved = recorded[variant]
        t = saved["target"]
        notes.append(
            "variant %s: autoscaling %d-%d instances, scaling policies: %d, scheduled actions: %d; "
            "removed before the update, restored after"
            % (
                variant,
                t["MinCapacity"],
                t["MaxCapacity"],
                len(saved["policies"]),
                len(saved["scheduled"]),
            )
        )
    if opts.autoscale is None:
        return recorded
    low, high, per_instance = opts.autoscale
    notes.append(
        "autoscaling after the update: %d-%d instances per variant, target %g invocations per "
        "instance a minute (policy %s)" % (low, high, per_instance, scaling.EIKIT_POLICY)
    )
    return {
        name: scaling.with_target_tracking(
            recorded.get(name), endpoint, name, low, high, per_instance
        )
        for name in names
    }


def _guardrails(
    plan: Plan, variants: List[Dict[str, Any]], models: List[Dict[str, Any]], opts: Options
) -> None:
    s = plan.state
    traffic = guardrails.Traffic.parse(opts.traffic)
    types = [v["InstanceType"] for v in s["old_variants"]] + [v["InstanceType"] for v in variants]
    marketplace = any(m["PrimaryContainer"].get("ModelPackageName") for m in models)
    used, why = guardrails.applicable(
        traffic, types, [v["InitialInstanceCount"] for v in variants], marketplace
    )
    plan.warnings += why
    if used is None:
        s["guardrails"] = None
        return
    names = [v["VariantName"] for v in variants]
    latency = opts.latency_ms or 2000.0
    made = guardrails.alarms(s["endpoint"], names, latency)
    s["guardrails"] = {
        "traffic": used.show(),
        "alarms": made,
        "deployment": guardrails.deployment_config(used, [a["AlarmName"] for a in made]),
        "latency_ms": latency,
        "latency_from_baseline": opts.latency_ms is None and opts.samples is not None,
    }
    plan.notes.append(
        "deployment guardrails: blue/green, %s; auto-rollback on alarms %s (made now, deleted "
        "after)" % (used.show(), ", ".join(a["AlarmName"] for a in made))
    )


def _parity(plan: Plan, opts: Options) -> None:
    s = plan.state
    if not opts.samples:
        s["parity"] = None
        return
    baseline = opts.baseline or "eikit-baseline-%s.json" % s["endpoint"]
    s["parity"] = {
        "samples": str(Path(opts.samples).resolve()),
        "baseline": str(Path(baseline).resolve()),
        "content_type": opts.content_type,
        "accept": opts.accept,
        "rtol": opts.rtol,
        "atol": opts.atol,
        "repeat": opts.repeat,
    }
    plan.notes.append(
        "parity: the old endpoint's answers to %s are recorded in %s before the update, and "
        "compared (rtol %g, atol %g) while the new fleet bakes and after the update"
        % (opts.samples, baseline, opts.rtol, opts.atol)
    )


def _preflight(
    clients: Clients, plan: Plan, images: List[str], shadows: List[Dict[str, Any]]
) -> None:
    s = plan.state
    found: List[preflight.Finding] = []
    for uri in sorted(set(images)):
        found += preflight.image(clients, uri, s["instance_type"])
    for model in s["models"]:
        found += preflight.model_data(
            clients, model["PrimaryContainer"], model.get("ExecutionRoleArn", "")
        )
    needed: Dict[str, Tuple[int, int]] = {}
    for v in s["config"]["ProductionVariants"] + shadows:
        now, most = needed.get(v["InstanceType"], (0, 0))
        top = (s["new_scaling"].get(v["VariantName"]) or {}).get("target", {}).get("MaxCapacity", 0)
        count = int(v["InitialInstanceCount"])
        needed[v["InstanceType"]] = (now + count, most + max(count, int(top)))
    for old in s["old_variants"]:
        if old["InstanceType"] in needed:  # blue/green: both fleets run during the update
            now, most = needed[old["InstanceType"]]
            needed[old["InstanceType"]] = (now + int(old.get("InitialInstanceCount") or 1), most)
    found += preflight.quotas(clients, needed)
    found += preflight.variants(s["config"], s["instance_type"])
    redeployable, why = preflight.old_config(s["old_variants"])
    s["old_redeployable"] = redeployable
    plan.warnings += why
    plan.warnings += [f.show() for f in found if not f.fatal]
    fatal = [f for f in found if f.fatal]
    if fatal:
        raise CloudError(
            "preflight: %d problem(s); nothing was changed:\n%s"
            % (len(fatal), "\n".join("  - " + f.show() for f in fatal))
        )


def _steps(s: Dict[str, Any]) -> List[str]:
    steps = ["create"]
    if s["parity"]:
        steps.append("baseline")
    if s["guardrails"]:
        steps.append("guardrails")
    steps += ["remove-scaling", "update", "wait", "restore-scaling"]
    if s["guardrails"]:
        steps.append("remove-guardrails")
    if s["parity"]:
        steps.append("verify")
    return steps


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
    for warning in plan.warnings:
        out.write("  ! %s\n" % warning)
    out.write("steps: %s\n" % ", ".join(s["steps"]))
    out.write("calls, in order:\n")
    for number, call in enumerate(plan.calls(), 1):
        out.write("%2d. %s\n" % (number, call.show().replace("\n", "\n    ")))
    out.write("then wait for InService (10-15 minutes is normal, longer with baking periods)\n")
