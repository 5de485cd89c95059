//! Stand-ins for the volume binder, the external provisioner and resizer, and the kubelet's
//! file system expansion: claims of an existing StorageClass bind (`Bound`, capacity as
//! requested, `volumeName: pvc-<uid>`); a claim whose request grows goes through
//! `Resizing` (ControllerResizeInProgress), `FileSystemResizePending` (NodeResizePending, until
//! a running Pod mounts it) and ends with the new capacity and no resize conditions.

use super::super::engine::{PROVISIONER, State, Write};
use super::super::quantity::Quantity;
use super::workloads::{Requeue, claim_in_use};
use super::{MANAGER, ctx, write_status};
use serde_json::{Value, json};

fn size(v: &Value, pointer: &str) -> Option<Quantity> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(Quantity::parse)
}

fn claim_condition(ty: &str, message: Option<&str>) -> Value {
    let mut c = json!({"type": ty, "status": "True", "lastProbeTime": null,
        "lastTransitionTime": super::super::engine::now()});
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// `assume_mounted`: no Pods are simulated, so a kubelet is taken to have the volume mounted.
pub fn claim(st: &mut State, ns: &str, name: &str, assume_mounted: bool) -> Requeue {
    let def = st.def("", "v1", "persistentvolumeclaims")?;
    let pvc = st.get_stored(&def, ns, name)?;
    if pvc["metadata"].get("deletionTimestamp").is_some() {
        return None;
    }
    let class = pvc["spec"]["storageClassName"].as_str().unwrap_or("");
    let sc_def = st.def("storage.k8s.io", "v1", "storageclasses")?;
    let Some(sc) = (!class.is_empty())
        .then(|| st.get_stored(&sc_def, "", class))
        .flatten()
    else {
        // No class to provision from: the claim waits.
        return None;
    };
    let provisioner = sc["provisioner"]
        .as_str()
        .unwrap_or(PROVISIONER)
        .to_string();
    let request = pvc["spec"]["resources"]["requests"]["storage"].clone();
    if pvc["status"]["phase"] != "Bound" {
        if pvc["spec"]["volumeName"].as_str().unwrap_or("").is_empty() {
            let mut body = (*pvc).clone();
            let uid = pvc["metadata"]["uid"].as_str().unwrap_or("").to_string();
            body["spec"]["volumeName"] = json!(format!("pvc-{uid}"));
            let md = body["metadata"].as_object_mut().expect("metadata");
            md.remove("managedFields");
            let ann = md.entry("annotations").or_insert_with(|| json!({}));
            for (k, v) in [
                ("pv.kubernetes.io/bind-completed", "yes"),
                ("pv.kubernetes.io/bound-by-controller", "yes"),
                (
                    "volume.beta.kubernetes.io/storage-provisioner",
                    provisioner.as_str(),
                ),
                (
                    "volume.kubernetes.io/storage-provisioner",
                    provisioner.as_str(),
                ),
            ] {
                ann[k] = json!(v);
            }
            let mut c = ctx(MANAGER);
            c.subresource = None;
            if let Err(e) = st.write(&def, ns, name, Write::Replace(body), &c) {
                tracing::debug!(error = ?e.message(), "binding claim {ns}/{name}");
            }
            return Some(std::time::Duration::from_millis(1));
        }
        let s = json!({"phase": "Bound", "accessModes": pvc["spec"]["accessModes"],
            "capacity": {"storage": request}});
        write_status(st, "", "v1", "persistentvolumeclaims", &pvc, s);
        return None;
    }
    let (Some(want), Some(have)) = (
        size(&pvc, "/spec/resources/requests/storage"),
        size(&pvc, "/status/capacity/storage"),
    ) else {
        return None;
    };
    if want <= have {
        return None;
    }
    let mut s = pvc["status"].clone();
    let stage = s
        .pointer("/allocatedResourceStatuses/storage")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let allocated = s.pointer("/allocatedResources/storage").cloned();
    if allocated.as_ref() != Some(&request) || stage.is_empty() {
        s["allocatedResources"] = json!({"storage": request});
        s["allocatedResourceStatuses"] = json!({"storage": "ControllerResizeInProgress"});
        s["conditions"] = json!([claim_condition("Resizing", None)]);
    } else if stage == "ControllerResizeInProgress" {
        s["allocatedResourceStatuses"] = json!({"storage": "NodeResizePending"});
        s["conditions"] = json!([claim_condition(
            "FileSystemResizePending",
            Some(
                "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
            )
        )]);
    } else if stage == "NodeResizePending" {
        if !assume_mounted && !claim_in_use(st, ns, name) {
            // The kubelet finishes once a Pod mounts the volume.
            return Some(std::time::Duration::from_millis(250));
        }
        s["capacity"] = json!({"storage": request});
        if let Some(m) = s.as_object_mut() {
            m.remove("allocatedResourceStatuses");
            m.remove("conditions");
        }
    }
    write_status(st, "", "v1", "persistentvolumeclaims", &pvc, s);
    None
}
