"""The operator's Deployment, Service, ServiceMonitor and PodDisruptionBudget follow the
operator's runtime contract and the restricted Pod Security Standard."""

from __future__ import annotations

import pytest

from conftest import (MODES, NAMESPACE, container, deployment_pod, env_of, of_kind, one, render,
                      render_notes)


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("mode", MODES)
def test_security_context_is_restricted(mode):
    objects = render(MODES[mode])
    pod = deployment_pod(objects)["spec"]
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 65532
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(objects)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host)
    assert "volumes" not in pod, "the operator needs no writable filesystem"
    assert pod["automountServiceAccountToken"] is True


def test_image_args_and_ports():
    objects = render()
    c = container(objects)
    assert c["image"] == "ghcr.io/keelson-dev/keelson:0.1.0"
    assert c["args"] == ["run"]
    assert "command" not in c, "the image's entrypoint /keelson must run"
    assert c["ports"] == [{"name": "admin", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}


def test_image_overrides():
    objects = render({"image": {"tag": "1.2.3", "pullPolicy": "Always", "pullSecrets": ["regcred"]}})
    assert container(objects)["image"] == "ghcr.io/keelson-dev/keelson:1.2.3"
    assert container(objects)["imagePullPolicy"] == "Always"
    assert deployment_pod(objects)["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    digest = "sha256:" + "a" * 64
    objects = render({"image": {"digest": digest}})
    assert container(objects)["image"] == f"ghcr.io/keelson-dev/keelson@{digest}"


def test_env_in_cluster_mode():
    env = env_of(render())
    assert env["KEELSON_LOG_LEVEL"] == "info"
    assert env["KEELSON_LOG_FORMAT"] == "json"
    assert env["KEELSON_NAMESPACES"] == ""
    assert env["KEELSON_ADMIN_ADDR"] == "0.0.0.0:8080"
    assert env["KEELSON_LEADER_ELECT"] == "true"
    assert env["KEELSON_LEASE_NAME"] == "keelson-leader"
    assert env["KEELSON_LEASE_NAMESPACE"] == NAMESPACE
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_env_in_namespaced_mode():
    env = env_of(render({"watchNamespaces": ["team-a", "team-b"], "log": {"level": "debug", "format": "text"}}))
    assert env["KEELSON_NAMESPACES"] == "team-a,team-b"
    assert env["KEELSON_LOG_LEVEL"] == "debug"
    assert env["KEELSON_LOG_FORMAT"] == "text"


def test_extra_env_is_appended():
    env = env_of(render({"extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}]}))
    assert env["RUST_BACKTRACE"] == "1"


def test_replicas_and_leader_election():
    assert one(render(), "Deployment")["spec"]["replicas"] == 2
    objects = render({"replicas": 1, "leaderElection": {"enabled": False}})
    assert env_of(objects)["KEELSON_LEADER_ELECT"] == "false"
    assert of_kind(objects, "PodDisruptionBudget") == []


def test_several_replicas_without_leader_election_are_refused():
    with pytest.raises(Exception, match="leaderElection"):
        render({"replicas": 3, "leaderElection": {"enabled": False}})


def test_default_soft_anti_affinity_selects_own_pods():
    objects = render()
    pod = deployment_pod(objects)
    terms = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert len(terms) == 1
    term = terms[0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selector_matches(term["labelSelector"]["matchLabels"], pod["metadata"]["labels"])


def test_affinity_presets_and_override():
    hard = deployment_pod(render({"podAntiAffinity": "hard"}))["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard
    assert "affinity" not in deployment_pod(render({"podAntiAffinity": "none"}))["spec"]
    custom = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}
    assert deployment_pod(render({"affinity": custom}))["spec"]["affinity"] == custom


def test_scheduling_values_reach_the_pod():
    values = {
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
        "terminationGracePeriodSeconds": 45,
        "podAnnotations": {"example.com/note": "yes"},
        "podLabels": {"team": "platform"},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}],
    }
    pod = deployment_pod(render(values))
    spec = pod["spec"]
    assert spec["nodeSelector"] == values["nodeSelector"]
    assert spec["tolerations"] == values["tolerations"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["terminationGracePeriodSeconds"] == 45
    assert pod["metadata"]["annotations"] == {"example.com/note": "yes"}
    assert pod["metadata"]["labels"]["team"] == "platform"
    [spread] = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    # A constraint without a selector is given one that selects the operator's pods.
    assert selector_matches(spread["labelSelector"]["matchLabels"], pod["metadata"]["labels"])


def test_deployment_selects_its_pods():
    deployment = one(render(), "Deployment")
    assert selector_matches(deployment["spec"]["selector"]["matchLabels"],
                            deployment["spec"]["template"]["metadata"]["labels"])


def test_metrics_service_targets_admin_port():
    objects = render()
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "admin", "protocol": "TCP"}]
    assert selector_matches(service["spec"]["selector"], deployment_pod(objects)["metadata"]["labels"])


def test_service_monitor_is_optional_and_scrapes_the_metrics_service():
    assert of_kind(render(), "ServiceMonitor") == []
    objects = render({"serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "10s",
                                         "labels": {"release": "prometheus"}}})
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert selector_matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "http-metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_pod_disruption_budget_only_with_several_replicas():
    objects = render()
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert selector_matches(pdb["spec"]["selector"]["matchLabels"], deployment_pod(objects)["metadata"]["labels"])
    assert of_kind(render({"replicas": 1}), "PodDisruptionBudget") == []
    assert of_kind(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget") == []


def test_service_account():
    objects = render()
    account = one(objects, "ServiceAccount")
    assert account["automountServiceAccountToken"] is True
    assert deployment_pod(objects)["spec"]["serviceAccountName"] == account["metadata"]["name"]
    objects = render({"serviceAccount": {"create": False, "name": "existing"}})
    assert of_kind(objects, "ServiceAccount") == []
    assert deployment_pod(objects)["spec"]["serviceAccountName"] == "existing"


def test_fullname_override_names_everything():
    objects = render({"fullnameOverride": "ops"})
    assert one(objects, "Deployment")["metadata"]["name"] == "ops"
    assert one(objects, "Service")["metadata"]["name"] == "ops-metrics"


def test_notes_say_what_to_do_next():
    notes = render_notes()
    assert "kubectl get kapp" in notes
    assert "rollout status deployment/keelson" in notes
    assert "team-a, team-b" in render_notes({"watchNamespaces": ["team-a", "team-b"]})
    assert "crds.install=false" in render_notes({"crds": {"install": False}})
