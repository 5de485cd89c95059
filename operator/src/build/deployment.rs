//! The Deployment of a service.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            ConfigMapKeySelector, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
            EnvVarSource, ExecAction, HTTPGetAction, PodSpec, PodTemplateSpec, Probe,
            SecretKeySelector, TCPSocketAction, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::{Ctx, labels, pod};
use crate::api::{self, Protocol, validate::Replicas, validate::ServiceModel};

/// Build the Deployment of `svc`. With autoscaling, `replicas` is left to the autoscaler.
pub fn build(ctx: &Ctx, svc: &ServiceModel) -> Deployment {
    let s = &svc.spec;
    let app = &ctx.model.name;
    // The databases' variables come first: the kubelet expands `$(VAR)` only for variables
    // defined earlier in the list, so the service's own `env` can build on them
    // (`jdbc:postgresql://$(ORDERS_DB_HOST):$(ORDERS_DB_PORT)/orders`).
    let mut env = pod::database_env(&svc.uses);
    env.extend(s.env.iter().map(env_var));

    let container = Container {
        name: s.name.clone(),
        image: Some(s.image.clone()),
        image_pull_policy: s.image_pull_policy.map(|p| format!("{p:?}")),
        command: (!s.command.is_empty()).then(|| s.command.clone()),
        args: (!s.args.is_empty()).then(|| s.args.clone()),
        ports: (!s.ports.is_empty()).then(|| {
            s.ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.port,
                    protocol: Some(protocol(p.protocol).into()),
                    ..ContainerPort::default()
                })
                .collect()
        }),
        env: (!env.is_empty()).then_some(env),
        resources: pod::resources(s.resources.as_ref()),
        liveness_probe: s
            .probes
            .as_ref()
            .and_then(|p| p.liveness.as_deref())
            .map(probe),
        readiness_probe: s
            .probes
            .as_ref()
            .and_then(|p| p.readiness.as_deref())
            .map(probe),
        startup_probe: s
            .probes
            .as_ref()
            .and_then(|p| p.startup.as_deref())
            .map(probe),
        security_context: Some(pod::container_security(
            s.read_only_root_filesystem.unwrap_or(true),
        )),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };

    Deployment {
        metadata: ctx.meta(&svc.object_name, &s.name, labels::Role::Service),
        spec: DeploymentSpec {
            replicas: match svc.replicas {
                Replicas::Fixed(n) => Some(n),
                Replicas::Autoscaled { .. } => None,
            },
            selector: labels::selector(app, &s.name),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::labels(app, &s.name, labels::Role::Service)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod::pod_security(s.run_as_user, None)),
                    service_account_name: s.service_account_name.clone(),
                    automount_service_account_token: Some(
                        s.automount_service_account_token.unwrap_or(false),
                    ),
                    enable_service_links: Some(false),
                    volumes: Some(vec![Volume {
                        name: "tmp".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// The protocol name Kubernetes uses.
pub fn protocol(p: Option<Protocol>) -> &'static str {
    match p {
        Some(Protocol::Udp) => "UDP",
        _ => "TCP",
    }
}

fn env_var(e: &api::EnvVarSpec) -> EnvVar {
    EnvVar {
        name: e.name.clone(),
        value: e.value.clone(),
        value_from: e.value_from.as_ref().map(|src| EnvVarSource {
            secret_key_ref: src.secret_key_ref.as_ref().map(|r| SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: r.optional,
            }),
            config_map_key_ref: src
                .config_map_key_ref
                .as_ref()
                .map(|r| ConfigMapKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: r.optional,
                }),
            ..EnvVarSource::default()
        }),
    }
}

fn probe(p: &api::ProbeSpec) -> Probe {
    Probe {
        http_get: p.http_get.as_ref().map(|h| HTTPGetAction {
            path: Some(h.path.clone()),
            port: IntOrString::String(h.port.clone()),
            ..HTTPGetAction::default()
        }),
        tcp_socket: p.tcp_socket.as_ref().map(|t| TCPSocketAction {
            port: IntOrString::String(t.port.clone()),
            ..TCPSocketAction::default()
        }),
        exec: p.exec.as_ref().map(|e| ExecAction {
            command: Some(e.command.clone()),
        }),
        initial_delay_seconds: p.initial_delay_seconds,
        period_seconds: p.period_seconds,
        timeout_seconds: p.timeout_seconds,
        failure_threshold: p.failure_threshold,
        ..Probe::default()
    }
}
