"""Application Auto Scaling of endpoint variants: record, remove, restore, each idempotent.

SageMaker refuses to change the instance type of a variant that has a scalable target, so
AWS's guidance for a migration is: remove the policies, update the endpoint, create them
again. ``record`` keeps everything needed to do that as plain JSON for the state file: the
target's capacities and suspended state, every scaling policy (with its ARN), every
scheduled action, and the CloudWatch alarms that drive a step-scaling policy. Target
tracking makes and deletes its own alarms; a step-scaling policy is driven by the user's
alarms, whose actions name the policy's ARN, and a re-created policy has a new ARN: so
``restore_alarms`` points those alarms at the new one.

Removal and restoration read what is there now and only do what is missing, so an
interrupted run can do them again (``resume``, ``rollback``): a policy already deleted is
not deleted twice, one already put back is reused.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Tuple

from eikit.cloud.aws import Call, Clients

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
EIKIT_POLICY = "eikit-invocations-per-instance"
INVOCATIONS = "SageMakerVariantInvocationsPerInstance"

# Fields a describe call returns that the matching put/register call does not take.
_READ_ONLY = {
    "Alarms",
    "CreationTime",
    "ScalableTargetARN",
    "ScheduledActionARN",
    "ResponseMetadata",
}
# DescribeAlarms fields PutMetricAlarm takes again.
ALARM_KEYS = (
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
    "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
    "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics",
    "ThresholdMetricId",
)  # fmt: skip
ACTION_KEYS = ("AlarmActions", "OKActions", "InsufficientDataActions")

Run = Callable[[Call], Any]


def resource_id(endpoint: str, variant: str) -> str:
    return "endpoint/%s/variant/%s" % (endpoint, variant)


def _clean(item: Dict[str, Any]) -> Dict[str, Any]:
    cleaned = {k: v for k, v in item.items() if k not in _READ_ONLY}
    for key in ("StartTime", "EndTime"):
        if key in cleaned and hasattr(cleaned[key], "isoformat"):
            cleaned[key] = cleaned[key].isoformat()
    return cleaned


def pages(client: Any, operation: str, key: str, **params: Any) -> List[Dict[str, Any]]:
    items: List[Dict[str, Any]] = []
    token: Optional[str] = None
    while True:
        page = getattr(client, operation)(**(dict(params, NextToken=token) if token else params))
        items.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return items


def record(clients: Clients, endpoint: str, variants: List[str]) -> Dict[str, Dict[str, Any]]:
    """``{variant: {"target": {...}, "policies": [...], "scheduled": [...]}}`` for scaled ones."""
    if not variants:
        return {}
    client = clients.autoscaling
    common = {"ServiceNamespace": NAMESPACE, "ScalableDimension": DIMENSION}
    targets = pages(
        client,
        "describe_scalable_targets",
        "ScalableTargets",
        ResourceIds=[resource_id(endpoint, v) for v in variants],
        **common,
    )
    recorded: Dict[str, Dict[str, Any]] = {}
    for target in targets:
        rid = target["ResourceId"]
        policies = pages(
            client, "describe_scaling_policies", "ScalingPolicies", ResourceId=rid, **common
        )
        scheduled = pages(
            client, "describe_scheduled_actions", "ScheduledActions", ResourceId=rid, **common
        )
        recorded[rid.rsplit("/", 1)[-1]] = {
            "target": _clean(target),
            "policies": [_clean(p) for p in policies if p.get("ResourceId") == rid],
            "scheduled": [_clean(s) for s in scheduled if s.get("ResourceId") == rid],
        }
    return recorded


def record_alarms(clients: Clients, recorded: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The CloudWatch alarms whose actions name one of the recorded step-scaling policies."""
    arns = [
        p["PolicyARN"]
        for saved in recorded.values()
        for p in saved["policies"]
        if p.get("PolicyType") == "StepScaling" and p.get("PolicyARN")
    ]
    found: Dict[str, Dict[str, Any]] = {}
    for arn in arns:
        alarms = pages(clients.cloudwatch, "describe_alarms", "MetricAlarms", ActionPrefix=arn)
        for alarm in alarms:
            if any(arn in alarm.get(key, []) for key in ACTION_KEYS):
                found[alarm["AlarmName"]] = {k: alarm[k] for k in ALARM_KEYS if k in alarm}
    return [found[name] for name in sorted(found)]


def target_tracking(
    endpoint: str, variant: str, low: int, high: int, per_instance: float
) -> Dict[str, Any]:
    """eikit's own autoscaling for a variant: ``low``-``high`` instances, target tracking on
    invocations per instance (what AWS's console sets up by default)."""
    rid = resource_id(endpoint, variant)
    common = {"ServiceNamespace": NAMESPACE, "ResourceId": rid, "ScalableDimension": DIMENSION}
    return {
        "target": dict(common, MinCapacity=low, MaxCapacity=high),
        "policies": [
            dict(
                common,
                PolicyName=EIKIT_POLICY,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(per_instance),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS},
                    "ScaleInCooldown": 300,
                    "ScaleOutCooldown": 60,
                },
            )
        ],
        "scheduled": [],
    }


def with_target_tracking(
    saved: Optional[Dict[str, Any]],
    endpoint: str,
    variant: str,
    low: int,
    high: int,
    per_instance: float,
) -> Dict[str, Any]:
    """``saved`` with the capacities and eikit's policy set (replacing a target-tracking
    policy on the same metric); a variant without autoscaling gets eikit's."""
    ours = target_tracking(endpoint, variant, low, high, per_instance)
    if not saved:
        return ours
    merged = copy.deepcopy(saved)
    merged["target"].update(MinCapacity=low, MaxCapacity=high)
    merged["policies"] = [
        p for p in merged["policies"] if _tracked_metric(p) != INVOCATIONS
    ] + ours["policies"]
    return merged


def _tracked_metric(policy: Dict[str, Any]) -> Optional[str]:
    config = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
    return (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")


def _common(saved: Dict[str, Any]) -> Dict[str, Any]:
    rid = saved["target"]["ResourceId"]
    return {"ServiceNamespace": NAMESPACE, "ResourceId": rid, "ScalableDimension": DIMENSION}


def remove_calls(now: Dict[str, Dict[str, Any]]) -> List[Call]:
    """Delete every policy and scheduled action there is ``now``, then deregister each target.

    ``now`` must be what is there (``record`` just before): AWS refuses to delete what is
    already gone, so a resumed run never replays an old list.
    """
    calls: List[Call] = []
    for variant in sorted(now):
        saved = now[variant]
        common, why = _common(saved), "variant %s" % variant
        for policy in saved["policies"]:
            params = dict(common, PolicyName=policy["PolicyName"])
            calls.append(Call("application-autoscaling", "delete_scaling_policy", params, why))
        for action in saved["scheduled"]:
            params = dict(common, ScheduledActionName=action["ScheduledActionName"])
            calls.append(Call("application-autoscaling", "delete_scheduled_action", params, why))
        calls.append(
            Call("application-autoscaling", "deregister_scalable_target", dict(common), why)
        )
    return calls


def remove(clients: Clients, endpoint: str, variants: List[str], run: Run) -> None:
    """Remove whatever autoscaling ``variants`` have now (nothing when there is none)."""
    for call in remove_calls(record(clients, endpoint, variants)):
        run(call)


def _register_params(target: Dict[str, Any]) -> Dict[str, Any]:
    keys = (
        "ServiceNamespace", "ResourceId", "ScalableDimension", "MinCapacity", "MaxCapacity",
        "RoleARN", "SuspendedState",
    )  # fmt: skip
    return {key: target[key] for key in keys if key in target}


def _put_params(policy: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in policy.items() if k != "PolicyARN"}


def restore_calls(state: Dict[str, Dict[str, Any]]) -> List[Call]:
    """The calls that put ``state`` back from nothing (what ``--dry-run`` shows)."""
    calls: List[Call] = []
    for variant in sorted(state):
        saved, why = state[variant], "variant %s" % variant
        register = _register_params(saved["target"])
        calls.append(Call("application-autoscaling", "register_scalable_target", register, why))
        for policy in saved["policies"]:
            calls.append(
                Call("application-autoscaling", "put_scaling_policy", _put_params(policy), why)
            )
        for action in saved["scheduled"]:
            calls.append(Call("application-autoscaling", "put_scheduled_action", dict(action), why))
    return calls


def _same(wanted: Dict[str, Any], there: Dict[str, Any]) -> bool:
    return all(there.get(k) == v for k, v in wanted.items() if k not in ("PolicyARN",))


def restore(clients: Clients, endpoint: str, state: Dict[str, Dict[str, Any]], run: Run) -> None:
    """Put ``state`` back where it is not there yet (a policy already there is reused)."""
    now = record(clients, endpoint, sorted(state))
    for variant in sorted(state):
        saved, why = state[variant], "variant %s" % variant
        there = now.get(variant)
        register = _register_params(saved["target"])
        if there is None or not _same(register, _register_params(there["target"])):
            run(Call("application-autoscaling", "register_scalable_target", register, why))
        live = {p["PolicyName"]: p for p in (there or {}).get("policies", [])}
        for policy in saved["policies"]:
            wanted = _put_params(policy)
            current = live.get(policy["PolicyName"])
            if current is None or not _same(wanted, _put_params(current)):
                run(Call("application-autoscaling", "put_scaling_policy", wanted, why))
        scheduled = {a["ScheduledActionName"]: a for a in (there or {}).get("scheduled", [])}
        for action in saved["scheduled"]:
            current = scheduled.get(action["ScheduledActionName"])
            if current is None or not _same(action, current):
                run(Call("application-autoscaling", "put_scheduled_action", dict(action), why))


def policy_of(arn: str) -> Optional[Tuple[str, str]]:
    """(resource id, policy name) of a scaling policy ARN, else None.

    ``arn:aws:autoscaling:REGION:ACCOUNT:scalingPolicy:UUID:resource/sagemaker/RESOURCE:
    policyName/NAME``: the UUID changes when a policy is made again, the rest does not.
    """
    head, sep, name = arn.partition(":policyName/")
    if not sep or ":scalingPolicy:" not in head or ":resource/" not in head:
        return None
    resource = head.split(":resource/", 1)[1]
    namespace, _, rid = resource.partition("/")
    return (rid, name) if namespace == NAMESPACE else None


def restore_alarms(
    clients: Clients, endpoint: str, alarms: List[Dict[str, Any]], variants: List[str], run: Run
) -> None:
    """Point each recorded alarm's scaling actions at the live policy of the same name.

    The alarm as it is now is kept (the user may have changed its threshold); one that is
    gone is put back as recorded. Only actions naming a policy of this endpoint change.
    """
    if not alarms:
        return
    live_arns = {
        (p["ResourceId"], p["PolicyName"]): p["PolicyARN"]
        for saved in record(clients, endpoint, variants).values()
        for p in saved["policies"]
        if p.get("PolicyARN")
    }
    names = [a["AlarmName"] for a in alarms]
    live = {
        a["AlarmName"]: {k: a[k] for k in ALARM_KEYS if k in a}
        for a in pages(clients.cloudwatch, "describe_alarms", "MetricAlarms", AlarmNames=names)
    }

    def relink(action: str) -> str:
        policy = policy_of(action)
        return live_arns.get(policy, action) if policy else action

    for alarm in alarms:
        current = live.get(alarm["AlarmName"])
        wanted = copy.deepcopy(current or alarm)
        for key in ACTION_KEYS:
            if key in wanted:
                wanted[key] = [relink(action) for action in wanted[key]]
        if current is not None and all(current.get(k) == wanted.get(k) for k in ACTION_KEYS):
            continue
        run(Call("cloudwatch", "put_metric_alarm", wanted, "actions -> the live policies"))


def scaled_variants(clients: Clients, endpoint: str, description: Dict[str, Any]) -> List[str]:
    """Variants of a described endpoint that have a scalable target."""
    names = [v["VariantName"] for v in description.get("ProductionVariants", [])]
    return sorted(record(clients, endpoint, names))
