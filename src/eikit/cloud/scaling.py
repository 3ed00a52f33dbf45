"""Application Auto Scaling of endpoint variants: record, remove, restore.

SageMaker refuses to replace a variant that has a scalable target, so AWS's guidance for a
migration is: remove the policies, update the endpoint, create them again. ``record`` keeps
everything needed to do that (the target's capacities and suspended state, every scaling
policy, every scheduled action) as plain JSON for the state file. ``remove`` deletes the
policies and scheduled actions itself before deregistering the target (AWS deletes them
with the target; moto does not, and being explicit costs nothing).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from eikit.cloud.aws import Call, Clients

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"

# Fields a describe call returns that the matching put/register call does not take.
_READ_ONLY = {
    "PolicyARN",
    "Alarms",
    "CreationTime",
    "ScalableTargetARN",
    "ScheduledActionARN",
    "ResponseMetadata",
}


def resource_id(endpoint: str, variant: str) -> str:
    return "endpoint/%s/variant/%s" % (endpoint, variant)


def _clean(item: Dict[str, Any]) -> Dict[str, Any]:
    cleaned = {k: v for k, v in item.items() if k not in _READ_ONLY}
    for key in ("StartTime", "EndTime"):
        if key in cleaned and hasattr(cleaned[key], "isoformat"):
            cleaned[key] = cleaned[key].isoformat()
    return cleaned


def _pages(client: Any, operation: str, key: str, **params: Any) -> List[Dict[str, Any]]:
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
    client = clients.autoscaling
    ids = [resource_id(endpoint, v) for v in variants]
    targets = _pages(
        client,
        "describe_scalable_targets",
        "ScalableTargets",
        ServiceNamespace=NAMESPACE,
        ResourceIds=ids,
        ScalableDimension=DIMENSION,
    )
    recorded: Dict[str, Dict[str, Any]] = {}
    for target in targets:
        rid = target["ResourceId"]
        variant = rid.rsplit("/", 1)[-1]
        policies = _pages(
            client,
            "describe_scaling_policies",
            "ScalingPolicies",
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
        )
        scheduled = _pages(
            client,
            "describe_scheduled_actions",
            "ScheduledActions",
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
        )
        recorded[variant] = {
            "target": _clean(target),
            "policies": [_clean(p) for p in policies if p.get("ResourceId") == rid],
            "scheduled": [_clean(s) for s in scheduled if s.get("ResourceId") == rid],
        }
    return recorded


def scaled_variants(clients: Clients, endpoint: str, description: Dict[str, Any]) -> List[str]:
    """Variants of a described endpoint that have a scalable target."""
    names = [v["VariantName"] for v in description.get("ProductionVariants", [])]
    return sorted(record(clients, endpoint, names)) if names else []


def remove_calls(state: Dict[str, Dict[str, Any]]) -> List[Call]:
    """Delete every policy and scheduled action, then deregister each target."""
    calls: List[Call] = []
    for variant in sorted(state):
        saved = state[variant]
        rid = saved["target"]["ResourceId"]
        common = {"ServiceNamespace": NAMESPACE, "ResourceId": rid, "ScalableDimension": DIMENSION}
        for policy in saved["policies"]:
            calls.append(
                Call(
                    "application-autoscaling",
                    "delete_scaling_policy",
                    dict(common, PolicyName=policy["PolicyName"]),
                    "variant %s" % variant,
                )
            )
        for action in saved["scheduled"]:
            calls.append(
                Call(
                    "application-autoscaling",
                    "delete_scheduled_action",
                    dict(common, ScheduledActionName=action["ScheduledActionName"]),
                    "variant %s" % variant,
                )
            )
        calls.append(
            Call(
                "application-autoscaling",
                "deregister_scalable_target",
                common,
                "variant %s" % variant,
            )
        )
    return calls


def restore_calls(state: Dict[str, Dict[str, Any]]) -> List[Call]:
    """Register each target with its saved capacities, then put back policies and actions."""
    calls: List[Call] = []
    for variant in sorted(state):
        saved = state[variant]
        target = saved["target"]
        register = {
            key: target[key]
            for key in (
                "ServiceNamespace",
                "ResourceId",
                "ScalableDimension",
                "MinCapacity",
                "MaxCapacity",
                "RoleARN",
                "SuspendedState",
            )
            if key in target
        }
        calls.append(
            Call(
                "application-autoscaling",
                "register_scalable_target",
                register,
                "variant %s" % variant,
            )
        )
        for policy in saved["policies"]:
            calls.append(
                Call(
                    "application-autoscaling",
                    "put_scaling_policy",
                    dict(policy),
                    "variant %s" % variant,
                )
            )
        for action in saved["scheduled"]:
            calls.append(
                Call(
                    "application-autoscaling",
                    "put_scheduled_action",
                    dict(action),
                    "variant %s" % variant,
                )
            )
    return calls


def registered(clients: Clients, endpoint: str, variants: List[str]) -> List[str]:
    """Which of ``variants`` have a scalable target now."""
    return sorted(record(clients, endpoint, variants)) if variants else []
