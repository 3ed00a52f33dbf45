"""The plan of an endpoint migration: read the endpoint, its config, models and autoscaling,
run the preflight checks, and say every step and call it will make (``--dry-run`` prints it).

Nothing here changes the account: the plan is the state file's first content. A plan is a
list of named steps (``state["steps"]``) with notes and warnings, so a step can be added
without changing how a run, resume or rollback works: on Inferentia, ``compile``
(``eikit.cloud.neuron_plan`` plans it, ``eikit.cloud.compiling`` runs it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO, Tuple

from eikit.cloud import guardrails, preflight, scaling
from eikit.cloud.aws import Call, Clients, CloudError, describe_error, resource_name
from eikit.cloud.compiling import compile_calls
from eikit.cloud.neuron_plan import CompileOptions, NeuronPlan
from eikit.cloud.variants import Planner, is_set
from eikit.neuron.facts import GENERATIONS
from eikit.neuron.manifest import ATOL, RTOL

CONFIG_KEYS = (  # CreateEndpointConfig parameters copied from the old config when set
    "DataCaptureConfig",
    "KmsKeyId",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
)


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
    compile: Optional[CompileOptions] = None  # --compile: a Neuron target's uncompiled models
    allow_uncompiled: bool = False  # serve an uncompiled model on a Neuron type's CPU


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
            if step == "compile":
                calls += compile_calls(s["compile"])
            elif step == "create":
                calls += [
                    Call("sagemaker", "create_model", m, "image for %s" % s["target"])
                    for m in s["models"]
                ]
                calls.append(Call("sagemaker", "create_endpoint_config", s["config"]))
            elif step in ("baseline", "verify"):
                why = "record the answers" if step == "baseline" else "compare the answers"
                params = {"EndpointName": s["endpoint"], "Samples": s["parity"]["samples"]}
                calls.append(Call("sagemaker-runtime", "invoke_endpoint", params, why))
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
        return calls


def update_params(s: Dict[str, Any]) -> Dict[str, Any]:
    params: Dict[str, Any] = {"EndpointName": s["endpoint"], "EndpointConfigName": s["new_config"]}
    deployment = (s.get("guardrails") or {}).get("deployment")
    if deployment:
        params["DeploymentConfig"] = deployment
    return params


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
    planner = Planner(clients, endpoint, instance_type, suffix, opts.image)
    neuron = None
    if planner.target in GENERATIONS:
        neuron = NeuronPlan(
            clients,
            endpoint,
            instance_type,
            planner.target,
            opts.compile,
            opts.allow_uncompiled,
            opts.samples,
            opts.content_type,
        )
        planner.data = neuron.data_url
    elif opts.compile or opts.allow_uncompiled:
        planner.warnings.append(
            "--compile, --allow-uncompiled: %s is not an Inferentia or Trainium type, "
            "nothing is compiled" % instance_type
        )
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
    new_scaling = _new_scaling(endpoint, recorded, names, opts, planner.notes)
    variants = []
    for old in config["ProductionVariants"]:
        name = old["VariantName"]
        count = current_counts.get(name) or old.get("InitialInstanceCount") or 1
        if name in new_scaling:  # within the autoscaling limits it will have
            limits = new_scaling[name]["target"]
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
    new_config = resource_name(old_config, suffix)
    create_config: Dict[str, Any] = {
        "EndpointConfigName": new_config,
        "ProductionVariants": variants,
    }
    for key in CONFIG_KEYS:
        if is_set(config.get(key)):
            create_config[key] = copy.deepcopy(config[key])
    if shadows:
        create_config["ShadowProductionVariants"] = shadows
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
    state["compile"] = _neuron(plan, neuron, opts)
    _guardrails(plan, variants, planner.models, opts)
    _parity(plan, opts)
    _preflight(clients, plan, planner.images, neuron.findings if neuron else [])
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
    marketplace = any(m["PrimaryContainer"].get("ModelPackageName") for m in models)
    s["guardrails"], notes, warnings = guardrails.plan(
        s["endpoint"],
        guardrails.Traffic.parse(opts.traffic),
        s["old_variants"],
        variants,
        marketplace,
        opts.latency_ms,
        from_baseline=opts.latency_ms is None and opts.samples is not None,
    )
    plan.notes += notes
    plan.warnings += warnings


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


def _neuron(plan: Plan, neuron: Optional[NeuronPlan], opts: Options) -> Optional[Dict[str, Any]]:
    """A Neuron target: what the plan found of each archive, and the compile step's job."""
    if neuron is None:
        return None
    compiling = None if neuron.findings else neuron.state()
    plan.notes += neuron.notes
    plan.warnings += neuron.warnings
    if opts.samples and (opts.rtol < RTOL or opts.atol < ATOL):
        plan.warnings.append(
            "parity: --rtol %g --atol %g are tighter than a compiled model answers on "
            "NeuronCores (fp32 matrix work runs in bf16; eikit compile checks at --rtol %g "
            "--atol %g): pass those, or the new fleet will likely be found to differ"
            % (opts.rtol, opts.atol, RTOL, ATOL)
        )
    return compiling


def _preflight(
    clients: Clients, plan: Plan, images: List[str], more: List[preflight.Finding]
) -> None:
    s = plan.state
    found = preflight.check(clients, s, images) + more
    s["old_redeployable"] = preflight.redeployable(s["old_variants"])
    plan.warnings += [f.show() for f in found if not f.fatal]
    fatal = [f for f in found if f.fatal]
    if fatal:
        raise CloudError(
            "preflight: %d problem(s); nothing was changed:\n%s"
            % (len(fatal), "\n".join("  - " + f.show() for f in fatal))
        )


def _steps(s: Dict[str, Any]) -> List[str]:
    steps = ["compile"] if s.get("compile") else []
    steps.append("create")
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
