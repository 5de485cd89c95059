//! The stand-in scheduler and kubelets: where a Pod runs and what its containers do, decided
//! from the same inputs a real scheduler and kubelet act on, so a scenario produces the same
//! pod states in-process and on a real cluster:
//!
//! - Three nodes `node-1`..`node-3`, each with allocatable `cpu: 8`, `memory: 16Gi`, `pods: 110`
//!   and labels `kubernetes.io/hostname`, `kubernetes.io/os: linux`. A Pod whose requests fit
//!   no node, whose `nodeSelector` matches no node, or whose volume claims are missing or
//!   unbound stays Pending with `PodScheduled=False, reason Unschedulable` and the scheduler's
//!   message (`0/3 nodes are available: 3 Insufficient cpu. preemption: ...`).
//! - An image under a host ending in `.invalid` (`registry.invalid/app:1`, RFC 2606: never
//!   resolvable) cannot be pulled: `ErrImagePull`, then `ImagePullBackOff` with
//!   `Back-off pulling image "<image>": ...`.
//! - An env `secretKeyRef`/`configMapKeyRef` (or `envFrom`) naming a Secret or ConfigMap that
//!   does not exist, or a key it lacks, without `optional: true`: `CreateContainerConfigError`
//!   with the kubelet's message (`secret "x" not found`). The container starts once it appears.
//! - A container whose command is a shell running `exit <n>` (`["sh", "-c", "exit 3"]`)
//!   terminates with that code: `CrashLoopBackOff` with `lastState.terminated.exitCode`.
//! - What a real kubelet learns from the image itself is declared with
//!   [`ApiServer::set_image`](super::ApiServer::set_image) (test-only: nothing on a real
//!   cluster reads it): an image that runs as root (with `runAsNonRoot` and no `runAsUser`:
//!   `CreateContainerConfigError`, `container has runAsNonRoot and image will run as root`),
//!   exits with a code, or never passes its readiness probe.
//!
//! Everything else runs and is ready (unless `set_workloads_ready(false)`: running, not ready).

use super::quantity::Quantity;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Nodes of the stand-in cluster.
pub const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
const NODE_CPU: &str = "8";
const NODE_MEMORY: &str = "16Gi";

/// What a container image does when a kubelet runs it (declared by tests; see the module
/// documentation for what is recognised without declaring anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageBehaviour {
    /// Starts and passes its probes.
    Runs,
    /// Runs as this user id (0: root, refused under `runAsNonRoot` without `runAsUser`).
    RunsAsUser(i64),
    /// Exits with this code right after starting.
    Exits(i32),
    /// Cannot be pulled (as if the tag did not exist).
    PullFails,
    /// Runs but never passes its readiness probe.
    NeverReady,
}

/// Image behaviours by image reference; a key ending in `*` matches every image with that
/// prefix.
#[derive(Debug, Default, Clone)]
pub struct Images(HashMap<String, ImageBehaviour>);

impl Images {
    pub fn set(&mut self, image: &str, b: ImageBehaviour) {
        self.0.insert(image.to_string(), b);
    }

    fn get(&self, image: &str) -> ImageBehaviour {
        if let Some(b) = self.0.get(image) {
            return b.clone();
        }
        self.0
            .iter()
            .filter(|(k, _)| k.ends_with('*') && image.starts_with(k.trim_end_matches('*')))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, b)| b.clone())
            .unwrap_or(ImageBehaviour::Runs)
    }
}

/// What the kubelet needs to know about the cluster around a Pod.
pub struct World<'a> {
    pub secrets: &'a dyn Fn(&str) -> Option<Value>,
    pub config_maps: &'a dyn Fn(&str) -> Option<Value>,
    /// A claim's phase, `None` when it does not exist.
    pub claim_phase: &'a dyn Fn(&str) -> Option<String>,
    pub images: &'a Images,
    pub workloads_ready: bool,
}

/// The scheduler's verdict: a node, or why none fits.
pub fn schedule(pod: &Value, world: &World) -> Result<String, String> {
    let spec = &pod["spec"];
    let claims: Vec<&str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
        })
        .collect();
    for c in &claims {
        match (world.claim_phase)(c) {
            None => {
                return Err(format!(
                    "0/3 nodes are available: persistentvolumeclaim \"{c}\" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                ));
            }
            Some(p) if p != "Bound" => {
                return Err("0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.".into());
            }
            _ => {}
        }
    }
    if let Some(sel) = spec["nodeSelector"].as_object()
        && !sel.is_empty()
    {
        let fits = |node: &str| {
            sel.iter().all(|(k, v)| match k.as_str() {
                "kubernetes.io/hostname" => v == node,
                "kubernetes.io/os" => v == "linux",
                "kubernetes.io/arch" => v == "amd64",
                _ => false,
            })
        };
        if !NODES.iter().any(|n| fits(n)) {
            return Err("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.".into());
        }
        if let Some(n) = NODES.iter().find(|n| fits(n)) {
            return Ok(n.to_string());
        }
    }
    let mut short = Vec::new();
    for (res, cap) in [("cpu", NODE_CPU), ("memory", NODE_MEMORY)] {
        let cap = Quantity::parse(cap).unwrap_or_default();
        let total = spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                c.pointer(&format!("/resources/requests/{res}"))
                    .and_then(Value::as_str)
                    .and_then(Quantity::parse)
            })
            .fold(0.0, |a, q| a + q.value());
        if total > cap.value() {
            short.push(format!("3 Insufficient {res}"));
        }
    }
    if !short.is_empty() {
        return Err(format!(
            "0/3 nodes are available: {}. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
            short.join(", ")
        ));
    }
    // Spread by name, deterministically.
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let i = name
        .bytes()
        .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
    Ok(NODES[i % NODES.len()].to_string())
}

/// The state of one container as the kubelet reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    Ready,
    /// Running, readiness probe failing.
    NotReady,
    /// Waiting with a reason and message; `Some(code)` after a terminated run.
    Waiting {
        reason: String,
        message: String,
        exit_code: Option<i32>,
    },
}

fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

/// The exit code of a command that is a shell running `exit <n>`.
fn exits_with(c: &Value) -> Option<i32> {
    let words: Vec<&str> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["args"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let script = match words.as_slice() {
        [sh, "-c", script] if sh.ends_with("sh") => *script,
        _ => return None,
    };
    script.trim().strip_prefix("exit ")?.trim().parse().ok()
}

fn config_error(pod: &Value, c: &Value, world: &World) -> Option<String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let missing = |kind: &str, name: &str, key: Option<&str>| -> Option<String> {
        let (found, label) = match kind {
            "secret" => ((world.secrets)(name), "Secret"),
            _ => ((world.config_maps)(name), "ConfigMap"),
        };
        let Some(obj) = found else {
            return Some(format!("{kind} {name:?} not found"));
        };
        let key = key?;
        let has = ["data", "binaryData", "stringData"]
            .iter()
            .any(|f| obj[*f].get(key).is_some());
        (!has).then(|| format!("couldn't find key {key} in {label} {ns}/{name}"))
    };
    for e in c["env"].as_array().into_iter().flatten() {
        for (field, kind) in [("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")] {
            let Some(r) = e.pointer(&format!("/valueFrom/{field}")) else {
                continue;
            };
            if r["optional"] == true {
                continue;
            }
            let name = r["name"].as_str().unwrap_or("");
            if let Some(m) = missing(kind, name, r["key"].as_str()) {
                return Some(m);
            }
        }
    }
    for e in c["envFrom"].as_array().into_iter().flatten() {
        for (field, kind) in [("secretRef", "secret"), ("configMapRef", "configmap")] {
            let Some(r) = e.get(field) else { continue };
            if r["optional"] == true {
                continue;
            }
            if let Some(m) = missing(kind, r["name"].as_str().unwrap_or(""), None) {
                return Some(m);
            }
        }
    }
    None
}

fn non_root_error(pod: &Value, c: &Value, user: Option<i64>) -> Option<String> {
    let pick = |k: &str| {
        c.pointer(&format!("/securityContext/{k}"))
            .filter(|v| !v.is_null())
            .or_else(|| pod.pointer(&format!("/spec/securityContext/{k}")))
            .cloned()
    };
    if pick("runAsNonRoot") != Some(json!(true)) {
        return None;
    }
    match pick("runAsUser").and_then(|u| u.as_i64()) {
        Some(0) => Some("container's runAsUser breaks non-root policy".into()),
        Some(_) => None,
        None if user == Some(0) => {
            let name = pod["metadata"]["name"].as_str().unwrap_or("");
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
            let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
            let cname = c["name"].as_str().unwrap_or("");
            Some(format!(
                "container has runAsNonRoot and image will run as root (pod: \"{name}_{ns}({uid})\", container: {cname})"
            ))
        }
        None => None,
    }
}

/// What a container does now; `previous` is its last reported state (pulls back off after
/// a first failure, crashed containers back off).
pub fn run(pod: &Value, c: &Value, previous: Option<&Value>, world: &World) -> Run {
    let image = c["image"].as_str().unwrap_or("");
    let behaviour = world.images.get(image);
    let was = |reason: &str| {
        previous.and_then(|p| p.pointer("/state/waiting/reason")) == Some(&json!(reason))
    };
    let pull_fails = behaviour == ImageBehaviour::PullFails
        || registry_host(image)
            .is_some_and(|h| h.split(':').next().unwrap_or("").ends_with(".invalid"));
    if pull_fails {
        let err = pull_error(image);
        if was("ErrImagePull") || was("ImagePullBackOff") {
            return Run::Waiting {
                reason: "ImagePullBackOff".into(),
                message: format!("Back-off pulling image {image:?}: ErrImagePull: {err}"),
                exit_code: None,
            };
        }
        return Run::Waiting {
            reason: "ErrImagePull".into(),
            message: err,
            exit_code: None,
        };
    }
    if let Some(m) = config_error(pod, c, world) {
        return Run::Waiting {
            reason: "CreateContainerConfigError".into(),
            message: m,
            exit_code: None,
        };
    }
    let user = match behaviour {
        ImageBehaviour::RunsAsUser(u) => Some(u),
        _ => None,
    };
    if let Some(m) = non_root_error(pod, c, user) {
        return Run::Waiting {
            reason: "CreateContainerConfigError".into(),
            message: m,
            exit_code: None,
        };
    }
    let exit = match behaviour {
        ImageBehaviour::Exits(code) => Some(code),
        _ => exits_with(c),
    };
    if let Some(code) = exit {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
        let cname = c["name"].as_str().unwrap_or("");
        return Run::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: format!(
                "back-off 10s restarting failed container={cname} pod={pod_name}_{ns}({uid})"
            ),
            exit_code: Some(code),
        };
    }
    if behaviour == ImageBehaviour::NeverReady || !world.workloads_ready {
        return Run::NotReady;
    }
    Run::Ready
}

fn pull_error(image: &str) -> String {
    let full = if registry_host(image).is_some() {
        image.to_string()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    format!(
        "failed to pull and unpack image {full:?}: failed to resolve reference {full:?}: {full}: not found"
    )
}
