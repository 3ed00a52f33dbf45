"""SageMaker's deployment guardrails for a migration: blue/green traffic shifting, baking
periods and auto-rollback on CloudWatch alarms, which eikit creates and removes after.

The old fleet keeps serving until the new one has baked, so a bad new fleet is rolled back
by SageMaker to instances that are still running: nothing (no EI accelerator, which AWS no
longer provisions) has to be made again. eikit adds one alarm of its own, the *stop* alarm,
which it sets to ALARM itself when the new fleet answers differently (parity) or when
``eikit migrate rollback`` is asked for while the update is still under way.

Exclusions (AWS's "Deployment guardrails: exclusions"): Inf1 endpoints (the fact and its
source are ``eikit.neuron.facts.GENERATIONS[...].guardrails``) and Marketplace containers
fall back to all-at-once shifting with no baking; canary needs a first step of at most 50%
of a variant's instances, linear steps of 10-50%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from eikit.cloud.aws import Call, Clients, CloudError
from eikit.cloud.images import instance_family
from eikit.neuron.facts import generation_of_family

KINDS = ("all-at-once", "canary", "linear")
DEFAULT_TRAFFIC = "canary:10:600"
METRIC_NAMESPACE = "eikit/Migration"
STOP_METRIC = "StopRequested"


def exclusion(family: str) -> Optional[str]:
    """Why AWS excludes endpoints on ``family`` from deployment guardrails (with the
    source), None when it does not."""
    try:
        generation = generation_of_family(family)
    except ValueError:  # Trn2/Trn3: refused before a plan gets here
        return None
    if generation is None or generation.guardrails:
        return None
    return "%s instances [%s]" % (family.capitalize(), generation.guardrails_source.cite())


@dataclass(frozen=True)
class Traffic:
    """``all-at-once[:SECONDS]``, ``canary:PCT:SECONDS`` or ``linear:PCT:SECONDS``."""

    kind: str
    percent: int = 100
    seconds: int = 600  # the baking period after each shift, and the final one

    @classmethod
    def parse(cls, text: str) -> Traffic:
        parts = text.split(":")
        kind = parts[0]
        try:
            numbers = [int(p) for p in parts[1:]]
        except ValueError:
            numbers = [-1]
        if kind == "all-at-once" and len(numbers) <= 1 and all(n >= 0 for n in numbers):
            return cls(kind, 100, numbers[0] if numbers else 600)
        if kind in ("canary", "linear") and len(numbers) == 2:
            percent, seconds = numbers
            low = 10 if kind == "linear" else 1
            if low <= percent <= 50 and 0 <= seconds <= 3600:
                return cls(kind, percent, seconds)
        raise CloudError(
            "--traffic %r: all-at-once[:SECONDS], canary:PCT:SECONDS (PCT 1-50) or "
            "linear:PCT:SECONDS (PCT 10-50); SECONDS 0-3600 is the baking period" % text
        )

    def show(self) -> str:
        if self.kind == "all-at-once":
            return "all at once, then %d s of baking" % self.seconds
        step = "first" if self.kind == "canary" else "steps of"
        return "%s: %s %d%% of the new fleet, %d s of baking after each shift" % (
            self.kind,
            step,
            self.percent,
            self.seconds,
        )


def applicable(
    traffic: Traffic, instance_types: List[str], counts: List[int], marketplace: bool
) -> Tuple[Optional[Traffic], List[str]]:
    """The traffic shifting AWS will do (None: no guardrails at all), and why it changed."""
    notes: List[str] = []
    families = sorted({instance_family(t) for t in instance_types})
    why = next((e for e in map(exclusion, families) if e), None)
    if why or marketplace:
        why = why or "a Marketplace container"
        notes.append(
            "deployment guardrails: AWS excludes endpoints with %s, so the update shifts all "
            "traffic at once with no baking period and no auto-rollback on alarms; the old "
            "fleet is gone once the update finishes" % why
        )
        return None, notes
    if traffic.kind != "all-at-once":
        smallest = min(counts) if counts else 0
        first = math.ceil(smallest * traffic.percent / 100.0)
        if smallest < 2 or first * 2 > smallest:
            notes.append(
                "deployment guardrails: %s traffic needs steps of at most half of a variant's "
                "instances and the smallest variant has %d; shifting all at once instead, "
                "with the same %d s baking period" % (traffic.kind, smallest, traffic.seconds)
            )
            return Traffic("all-at-once", 100, traffic.seconds), notes
    return traffic, notes


def alarm_names(endpoint: str, variants: List[str]) -> List[str]:
    names = ["eikit-%s-stop" % endpoint]
    for variant in variants:
        names += [
            "eikit-%s-%s-5xx" % (endpoint, variant),
            "eikit-%s-%s-latency" % (endpoint, variant),
        ]
    return names


def stop_alarm(endpoint: str) -> str:
    return "eikit-%s-stop" % endpoint


def alarms(endpoint: str, variants: List[str], latency_ms: float) -> List[Dict[str, Any]]:
    """PutMetricAlarm parameters: per variant 5xx errors and model latency, and the stop alarm.

    ``Invocation5XXErrors`` averages to the share of requests that failed; ``ModelLatency``
    is in microseconds. Missing data (no traffic) is not a breach.
    """
    made: List[Dict[str, Any]] = [
        {
            "AlarmName": stop_alarm(endpoint),
            "AlarmDescription": "eikit sets this to ALARM to make SageMaker roll back the "
            "migration of %s (parity mismatch, or a rollback asked for)" % endpoint,
            "Namespace": METRIC_NAMESPACE,
            "MetricName": STOP_METRIC,
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        }
    ]
    for variant in variants:
        dims = [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ]
        common = {
            "Namespace": "AWS/SageMaker",
            "Dimensions": dims,
            "Statistic": "Average",
            "Period": 60,
            "EvaluationPeriods": 2,
            "DatapointsToAlarm": 2,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }
        made.append(
            dict(
                common,
                AlarmName="eikit-%s-%s-5xx" % (endpoint, variant),
                AlarmDescription="eikit migration guardrail: more than 1%% of requests to %s/%s "
                "fail with 5xx" % (endpoint, variant),
                MetricName="Invocation5XXErrors",
                Threshold=0.01,
            )
        )
        made.append(
            dict(
                common,
                AlarmName="eikit-%s-%s-latency" % (endpoint, variant),
                AlarmDescription="eikit migration guardrail: model latency of %s/%s above "
                "%g ms" % (endpoint, variant, latency_ms),
                MetricName="ModelLatency",
                Threshold=float(latency_ms) * 1000.0,
            )
        )
    return made


def deployment_config(traffic: Traffic, names: List[str]) -> Dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: blue/green with ``traffic``, auto-rollback on
    ``names``; the final baking period (before the old fleet is terminated) is as long as
    the others."""
    routing: Dict[str, Any] = {
        "Type": traffic.kind.replace("-", "_").upper(),
        "WaitIntervalInSeconds": traffic.seconds,
    }
    size = {"Type": "CAPACITY_PERCENT", "Value": traffic.percent}
    steps = 1
    if traffic.kind == "canary":
        routing["CanarySize"], steps = size, 2
    elif traffic.kind == "linear":
        routing["LinearStepSize"], steps = size, math.ceil(100 / traffic.percent)
    waits = traffic.seconds * (steps + 1)
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": traffic.seconds,
            "MaximumExecutionTimeoutInSeconds": max(600, min(28800, waits + 3600)),
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": n} for n in names]},
    }


def plan(
    endpoint: str,
    traffic: Traffic,
    old_variants: List[Dict[str, Any]],
    variants: List[Dict[str, Any]],
    marketplace: bool,
    latency_ms: Optional[float],
    from_baseline: bool,
) -> Tuple[Optional[Dict[str, Any]], List[str], List[str]]:
    """The guardrails of a migration (None: AWS allows none), notes and warnings."""
    types = [v["InstanceType"] for v in old_variants + variants]
    counts = [v["InitialInstanceCount"] for v in variants]
    used, warnings = applicable(traffic, types, counts, marketplace)
    if used is None:
        return None, [], warnings
    latency = latency_ms or 2000.0
    made = alarms(endpoint, [v["VariantName"] for v in variants], latency)
    names = [a["AlarmName"] for a in made]
    planned = {
        "traffic": used.show(),
        "alarms": made,
        "deployment": deployment_config(used, names),
        "latency_ms": latency,
        "latency_from_baseline": from_baseline,
    }
    note = "deployment guardrails: blue/green, %s; auto-rollback on alarms %s (made now, " % (
        used.show(),
        ", ".join(names),
    )
    return planned, [note + "deleted after)"], warnings


def existing(clients: Clients, names: List[str]) -> List[str]:
    if not names:
        return []
    answer = clients.cloudwatch.describe_alarms(AlarmNames=names)
    return sorted(a["AlarmName"] for a in answer.get("MetricAlarms", []))


def stop_calls(endpoint: str, why: str) -> List[Call]:
    """Trip the stop alarm: a data point over its threshold, and its state set at once
    (SageMaker reads the state; the data point keeps it in ALARM at the next evaluation)."""
    name = stop_alarm(endpoint)
    return [
        Call(
            "cloudwatch",
            "put_metric_data",
            {
                "Namespace": METRIC_NAMESPACE,
                "MetricData": [
                    {
                        "MetricName": STOP_METRIC,
                        "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
                        "Value": 1.0,
                    }
                ],
            },
            why,
        ),
        Call(
            "cloudwatch",
            "set_alarm_state",
            {"AlarmName": name, "StateValue": "ALARM", "StateReason": why[:1000]},
            why,
        ),
    ]
