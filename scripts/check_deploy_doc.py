#!/usr/bin/env python3
"""Checks docs/deploy.md: parses its YAML blocks and checks the fields its text relies on.

The page's Kubernetes example must hang together: probes on /readyz and /healthz on the stream
port, a preStop hook that drains, a grace period longer than the preStop sleep plus the drain
grace, an autoscaler on trunkline_calls_active as the Prometheus Adapter's rule names it, and
proxy timeouts at least what the text says. Prints every failure and exits 1 if there is one.

    $(scripts/pyenv.sh)/bin/python scripts/check_deploy_doc.py [PATH]   # default: docs/deploy.md

Needs PyYAML (in the pinned test environment, scripts/pyenv.sh).
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
METRIC = "trunkline_calls_active"
# The drain returns at most this long after its grace (OffloadServer::drain).
DRAIN_OVERRUN_S = 2
# An ALB's deregistration delay and idle timeout cannot exceed these.
ALB_MAX_DEREGISTRATION_S = 3600
ALB_MAX_IDLE_S = 4000


class Check:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.documents = 0

    def require(self, ok, message):
        if not ok:
            self.failures.append(message)
        return ok


def yaml_documents(text):
    """Every YAML document of the page's ```yaml blocks."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M)
    return [doc for block in blocks for doc in yaml.safe_load_all(block) if doc is not None]


def stated(check, text, pattern, what):
    """The integer the text states where `pattern` (with one group) matches, or None."""
    match = re.search(pattern, text)
    if check.require(match is not None, f"the text no longer states {what} (pattern {pattern!r})"):
        return int(match.group(1))
    return None


def dig(value, *keys):
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def one(check, docs, what, pick):
    found = [d for d in docs if pick(d)]
    if check.require(len(found) == 1, f"expected one {what} block, found {len(found)}"):
        return found[0]
    return None


def check_page(path):
    check = Check(path)
    text = path.read_text()
    try:
        docs = yaml_documents(text)
    except yaml.YAMLError as error:
        check.require(False, f"a YAML block does not parse: {error}")
        return check
    kind = lambda k: lambda d: isinstance(d, dict) and d.get("kind") == k  # noqa: E731

    longest_call_s = stated(check, text, r"longest call you accept is \d+ minutes \((\d+) s\)", "the longest call")
    min_idle_s = stated(check, text, r"idle timeout to at least (\d+) s", "the proxies' least idle timeout")
    grace_in_text = stated(check, text, r"`TRUNKLINE_DRAIN_GRACE_S` is (\d+)", "the drain grace")
    period_in_text = stated(check, text, r"`terminationGracePeriodSeconds` is (\d+)", "the termination grace period")

    # The Deployment: probes, preStop, grace period.
    deployment = one(check, docs, "Deployment", kind("Deployment"))
    grace_s = prestop_sleep_s = None
    port_refs = set()
    labels = {}
    name = None
    if deployment:
        name = dig(deployment, "metadata", "name")
        spec = dig(deployment, "spec", "template", "spec") or {}
        labels = dig(deployment, "spec", "template", "metadata", "labels") or {}
        containers = spec.get("containers") or []
        if check.require(len(containers) == 1, f"expected one container, found {len(containers)}"):
            c = containers[0]
            ports = [p for p in c.get("ports") or [] if p.get("name") == "stream"]
            if check.require(len(ports) == 1, "the container has no port named `stream`"):
                port_refs = {"stream", ports[0].get("containerPort")}
            for probe, want in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
                get = dig(c, probe, "httpGet") or {}
                check.require(get.get("path") == want, f"{probe} path is {get.get('path')!r}, not {want!r}")
                check.require(get.get("port") in port_refs,
                              f"{probe} port is {get.get('port')!r}, not the stream port {sorted(map(str, port_refs))}")
            env = {e.get("name"): e.get("value") for e in c.get("env") or []}
            check.require("TRUNKLINE_LOG" in env, "the container does not set TRUNKLINE_LOG")
            if check.require(str(env.get("TRUNKLINE_DRAIN_GRACE_S", "")).isdigit(),
                             "the container does not set TRUNKLINE_DRAIN_GRACE_S to a number of seconds"):
                grace_s = int(env["TRUNKLINE_DRAIN_GRACE_S"])
            command = dig(c, "lifecycle", "preStop", "exec", "command")
            if check.require(isinstance(command, list) and command, "the container has no preStop exec command"):
                script = " ".join(map(str, command))
                check.require("kill -TERM 1" in script, "the preStop hook does not send SIGTERM to the process")
                check.require(re.search(r"while kill -0 1", script) is not None,
                              "the preStop hook does not wait for the process to exit")
                sleep = re.search(r"\bsleep (\d+)", script)
                if check.require(sleep is not None, "the preStop hook does not sleep before draining"):
                    prestop_sleep_s = int(sleep.group(1))
        period = spec.get("terminationGracePeriodSeconds")
        check.require(isinstance(period, int), "terminationGracePeriodSeconds is not set")
        if isinstance(period, int) and grace_s is not None and prestop_sleep_s is not None:
            need = prestop_sleep_s + grace_s + DRAIN_OVERRUN_S
            check.require(period > need, f"terminationGracePeriodSeconds {period} is not more than the preStop "
                          f"sleep + the drain grace + {DRAIN_OVERRUN_S} s ({need})")
        if period_in_text is not None:
            check.require(period == period_in_text,
                          f"terminationGracePeriodSeconds is {period} in the YAML, {period_in_text} in the text")
        check.require(dig(deployment, "spec", "strategy", "rollingUpdate", "maxUnavailable") == 0,
                      "the rollout may take an old pod down before its replacement is ready (maxUnavailable != 0)")
    if grace_s is not None:
        if grace_in_text is not None:
            check.require(grace_s == grace_in_text,
                          f"TRUNKLINE_DRAIN_GRACE_S is {grace_s} in the YAML, {grace_in_text} in the text")
        if longest_call_s is not None:
            check.require(grace_s >= longest_call_s,
                          f"the drain grace ({grace_s} s) is shorter than the longest call ({longest_call_s} s)")

    def selects(selector):
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    # The Service in front of it.
    service = one(check, docs, "Service", kind("Service"))
    service_ports = set()
    if service:
        check.require(selects(dig(service, "spec", "selector")), "the Service does not select the Deployment's pods")
        for p in dig(service, "spec", "ports") or []:
            check.require(p.get("targetPort") in port_refs, f"the Service targets port {p.get('targetPort')!r}")
            service_ports |= {p.get("name"), p.get("port")}

    # Prometheus scrapes /metrics on the stream port.
    monitor = one(check, docs, "PodMonitor", kind("PodMonitor"))
    if monitor:
        check.require(selects(dig(monitor, "spec", "selector", "matchLabels")),
                      "the PodMonitor does not select the Deployment's pods")
        endpoints = dig(monitor, "spec", "podMetricsEndpoints") or []
        check.require(any(e.get("path") == "/metrics" and e.get("port") in port_refs for e in endpoints),
                      "the PodMonitor does not scrape /metrics on the stream port")

    # The adapter's rule makes the metric available per pod, under the name the HPA uses.
    adapter = one(check, docs, "Prometheus Adapter rules", lambda d: isinstance(d, dict) and "rules" in d)
    exposed = None
    if adapter:
        rules = [r for r in adapter["rules"] if METRIC in str(r.get("seriesQuery", ""))]
        if check.require(len(rules) == 1, f"expected one adapter rule whose seriesQuery names {METRIC}"):
            rule = rules[0]
            overrides = dig(rule, "resources", "overrides") or {}
            check.require(dig(overrides, "namespace", "resource") == "namespace" and
                          dig(overrides, "pod", "resource") == "pod",
                          "the adapter rule does not map the namespace and pod labels to their resources")
            matches = dig(rule, "name", "matches") or METRIC
            check.require(re.search(matches, METRIC) is not None,
                          f"the adapter rule's name.matches {matches!r} does not match {METRIC}")
            exposed = dig(rule, "name", "as") or METRIC
            check.require(exposed == METRIC, f"the adapter exposes the metric as {exposed!r}, not {METRIC}")
            query = str(rule.get("metricsQuery", ""))
            check.require("<<.Series>>" in query and "<<.LabelMatchers>>" in query,
                          "the adapter rule's metricsQuery does not use <<.Series>> and <<.LabelMatchers>>")

    # The autoscaler: a Pods metric, the adapter's name, the Deployment.
    hpa = one(check, docs, "HorizontalPodAutoscaler", kind("HorizontalPodAutoscaler"))
    if hpa:
        check.require(hpa.get("apiVersion") == "autoscaling/v2", "the HPA is not autoscaling/v2")
        target = dig(hpa, "spec", "scaleTargetRef") or {}
        check.require(target.get("kind") == "Deployment" and target.get("name") == name,
                      f"the HPA scales {target.get('kind')} {target.get('name')!r}, not the Deployment {name!r}")
        pods = [m for m in dig(hpa, "spec", "metrics") or [] if m.get("type") == "Pods"]
        if check.require(len(pods) == 1, "the HPA has no Pods metric"):
            metric = dig(pods[0], "pods", "metric", "name")
            check.require(metric == METRIC, f"the HPA's Pods metric is {metric!r}, not {METRIC}")
            check.require(exposed is None or metric == exposed,
                          f"the HPA asks for {metric!r}, the adapter serves {exposed!r}")
            check.require(dig(pods[0], "pods", "target", "type") == "AverageValue",
                          "the HPA's Pods metric target is not an AverageValue")

    # The ingresses: timeouts at least what the text says, the Service behind them.
    ingresses = [d for d in docs if kind("Ingress")(d)]
    by_class = {dig(i, "spec", "ingressClassName"): i for i in ingresses}
    check.require(set(by_class) == {"nginx", "alb"}, f"expected an nginx and an alb Ingress, found {sorted(map(str, by_class))}")
    for ingress in ingresses:
        for rule in dig(ingress, "spec", "rules") or []:
            for p in dig(rule, "http", "paths") or []:
                backend = dig(p, "backend", "service") or {}
                check.require(service is not None and backend.get("name") == dig(service, "metadata", "name"),
                              f"an Ingress path goes to service {backend.get('name')!r}")
                port = backend.get("port") or {}
                check.require(port.get("name", port.get("number")) in service_ports,
                              f"an Ingress path goes to service port {port}, not one of the Service's")
    nginx = dig(by_class.get("nginx"), "metadata", "annotations") or {}
    for key in ["nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"]:
        value = str(nginx.get(key, ""))
        if check.require(value.isdigit(), f"the nginx Ingress does not set {key} in seconds"):
            check.require(min_idle_s is None or int(value) >= min_idle_s,
                          f"{key} is {value}, under the {min_idle_s} s the text asks for")
    alb = dig(by_class.get("alb"), "metadata", "annotations") or {}
    attributes = str(alb.get("alb.ingress.kubernetes.io/load-balancer-attributes", ""))
    idle = re.search(r"idle_timeout\.timeout_seconds=(\d+)", attributes)
    if check.require(idle is not None, "the ALB Ingress does not set idle_timeout.timeout_seconds"):
        idle_s = int(idle.group(1))
        check.require(min_idle_s is None or idle_s >= min_idle_s,
                      f"the ALB idle timeout is {idle_s} s, under the {min_idle_s} s the text asks for")
        check.require(idle_s <= ALB_MAX_IDLE_S, f"the ALB idle timeout {idle_s} s is over the ALB's {ALB_MAX_IDLE_S} s")
    target_group = str(alb.get("alb.ingress.kubernetes.io/target-group-attributes", ""))
    delay = re.search(r"deregistration_delay\.timeout_seconds=(\d+)", target_group)
    if check.require(delay is not None, "the ALB Ingress does not set deregistration_delay.timeout_seconds"):
        delay_s = int(delay.group(1))
        if grace_s is not None and prestop_sleep_s is not None:
            check.require(delay_s >= prestop_sleep_s + grace_s,
                          f"the ALB deregistration delay {delay_s} s cuts calls before the preStop sleep + drain "
                          f"grace ({prestop_sleep_s + grace_s} s)")
        check.require(delay_s <= ALB_MAX_DEREGISTRATION_S,
                      f"the ALB deregistration delay {delay_s} s is over the ALB's {ALB_MAX_DEREGISTRATION_S} s")
    check.require(alb.get("alb.ingress.kubernetes.io/healthcheck-path") == "/readyz",
                  "the ALB's health check is not /readyz")
    check.require(alb.get("alb.ingress.kubernetes.io/target-type") == "ip",
                  "the ALB does not target the pods themselves (target-type ip)")
    check.documents = len(docs)
    return check


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else ROOT / "docs/deploy.md"
    check = check_page(path)
    for failure in check.failures:
        print(f"{path}: {failure}", file=sys.stderr)
    if check.failures:
        print(f"{path}: {len(check.failures)} check(s) failed", file=sys.stderr)
        return 1
    print(f"{path}: {check.documents} YAML documents, every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
