//! Watch history of the API server stand-in, as kube-apiserver's watch cache keeps it: a watch
//! resuming from a resourceVersion gets the events it missed while they are younger than the
//! history window (75 s, like the watch cache's `eventFreshDuration`) and within the per-resource
//! cap; from an older one it gets one ERROR event with a 410 Expired Status (recorded:
//! `watch/watch-too-old-resourceversion.json`), and its client lists again. History stays bounded
//! however many writes happen.

mod apiserver_support;

use apiserver_support::*;
use e2e::apiserver::ServerOptions;
use serde_json::{Value, json};
use std::time::Duration;

const CMS: &str = "/api/v1/namespaces/rec/configmaps";

fn no_controllers() -> ServerOptions {
    ServerOptions {
        controllers: false,
        ..quick_options()
    }
}

fn configmap(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": data})
}

async fn list_rv(api: &Api) -> u64 {
    rv(&api.get(CMS).await.json())
}

async fn create(api: &Api, name: &str, labels: Value) -> Value {
    let r = api
        .send_json(
            "POST",
            CMS,
            "application/json",
            &configmap(name, labels, json!({"v": "0"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn merge(api: &Api, name: &str, patch: Value) -> Value {
    let r = api
        .send_json(
            "PATCH",
            &format!("{CMS}/{name}"),
            "application/merge-patch+json",
            &patch,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// (type, name, resourceVersion) of each watch line.
fn seen(lines: &[(Duration, Value)]) -> Vec<(String, String, u64)> {
    lines
        .iter()
        .map(|(_, l)| {
            (
                l["type"].as_str().unwrap().to_string(),
                l["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                rv(&l["object"]),
            )
        })
        .collect()
}

fn expect(events: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
    events
        .iter()
        .map(|(t, n, r)| (t.to_string(), n.to_string(), *r))
        .collect()
}

async fn watch_from(api: &Api, from: u64, extra: &str, max: usize) -> Vec<(Duration, Value)> {
    api.watch(
        format!("{CMS}?watch=true&resourceVersion={from}&timeoutSeconds=1{extra}"),
        max,
        Duration::from_secs(5),
    )
    .await
}

fn assert_expired(lines: &[(Duration, Value)], from: u64) {
    assert_eq!(
        lines.len(),
        1,
        "one ERROR line, then the stream ends: {lines:?}"
    );
    let (_, l) = &lines[0];
    assert_eq!(l["type"], "ERROR");
    assert_eq!(l["object"]["kind"], "Status");
    assert_eq!(l["object"]["status"], "Failure");
    assert_eq!(l["object"]["reason"], "Expired");
    assert_eq!(l["object"]["code"], 410);
    let msg = l["object"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("too old resource version: {from} (")),
        "{msg}"
    );
}

#[tokio::test]
async fn a_watch_resuming_within_the_window_gets_what_it_missed_with_selector_transitions() {
    let api = Api::with_rec(no_controllers()).await;
    let start = list_rv(&api).await;
    let a = create(&api, "a", json!({"team": "blue"})).await;
    let b = create(&api, "b", json!({"team": "red"})).await;
    let b_blue = merge(&api, "b", json!({"metadata": {"labels": {"team": "blue"}}})).await;
    let a_red = merge(&api, "a", json!({"metadata": {"labels": {"team": "red"}}})).await;
    let b_data = merge(&api, "b", json!({"data": {"v": "1"}})).await;
    let d = api
        .request("DELETE", &format!("{CMS}/b"), None, None, None)
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    let deleted_rv = list_rv(&api).await;

    // Without selectors: every change, in order, each object as it was then.
    let all = watch_from(&api, start, "", 20).await;
    assert_eq!(
        seen(&all),
        expect(&[
            ("ADDED", "a", rv(&a)),
            ("ADDED", "b", rv(&b)),
            ("MODIFIED", "b", rv(&b_blue)),
            ("MODIFIED", "a", rv(&a_red)),
            ("MODIFIED", "b", rv(&b_data)),
            ("DELETED", "b", deleted_rv),
        ])
    );
    assert_eq!(all[2].1["object"]["metadata"]["labels"]["team"], "blue");
    assert_eq!(all[4].1["object"]["data"]["v"], "1");
    assert_eq!(all[0].1["object"]["apiVersion"], "v1");
    assert_eq!(all[0].1["object"]["kind"], "ConfigMap");

    // With a label selector: objects entering the selection are ADDED, leaving it DELETED.
    let blue = watch_from(&api, start, "&labelSelector=team%3Dblue", 20).await;
    assert_eq!(
        seen(&blue),
        expect(&[
            ("ADDED", "a", rv(&a)),
            ("ADDED", "b", rv(&b_blue)),
            ("DELETED", "a", rv(&a_red)),
            ("MODIFIED", "b", rv(&b_data)),
            ("DELETED", "b", deleted_rv),
        ])
    );

    // Resuming from the middle gets only what came after.
    let tail = watch_from(&api, rv(&a_red), "", 20).await;
    assert_eq!(
        seen(&tail),
        expect(&[("MODIFIED", "b", rv(&b_data)), ("DELETED", "b", deleted_rv)])
    );

    // Metadata-only watches replay history in their own form.
    let meta = api
        .watch_accept(
            format!("{CMS}?watch=true&resourceVersion={start}&timeoutSeconds=1"),
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            20,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(meta.len(), 6);
    assert!(meta.iter().all(|(_, l)| {
        l["object"]["kind"] == "PartialObjectMetadata" && l["object"].get("data").is_none()
    }));
}

#[tokio::test]
async fn a_watch_resuming_from_before_the_window_is_expired_and_a_relist_recovers() {
    let api = Api::with_rec(no_controllers()).await;
    // A window long enough that the watch right after the write starts within it on a loaded
    // machine too.
    let window = Duration::from_secs(2);
    api.server.set_watch_history(window, 4_096);
    let before = list_rv(&api).await;
    let a = create(&api, "a", json!({})).await;
    // Within the window the missed event is there.
    let lines = watch_from(&api, before, "", 10).await;
    assert_eq!(seen(&lines), expect(&[("ADDED", "a", rv(&a))]));
    tokio::time::sleep(window).await;
    // The event left the window: resuming from before it is 410 Expired ...
    assert_expired(&watch_from(&api, before, "", 10).await, before);
    assert_eq!(
        api.server.watch_history_len("", "v1", "configmaps"),
        0,
        "nothing older than the window stays"
    );
    // ... while a client that saw it resumes without loss ...
    let b = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        create(&api, "b", json!({})).await
    };
    let (lines, b) = tokio::join!(watch_from(&api, rv(&a), "", 10), b);
    assert_eq!(seen(&lines), expect(&[("ADDED", "b", rv(&b))]));
    // ... and an expired client lists again and watches from the list's resourceVersion.
    let list = api.get(CMS).await.json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let c = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        create(&api, "c", json!({})).await
    };
    let (lines, c) = tokio::join!(watch_from(&api, rv(&list), "", 10), c);
    assert_eq!(seen(&lines), expect(&[("ADDED", "c", rv(&c))]));
}

#[tokio::test]
async fn watch_history_stays_bounded_however_many_writes() {
    let api = Api::with_rec(no_controllers()).await;
    let cap = 50;
    api.server.set_watch_history(Duration::from_secs(75), cap);
    create(&api, "busy", json!({})).await;
    let mut rvs = Vec::new();
    for i in 1..=300 {
        let o = merge(&api, "busy", json!({"data": {"v": i.to_string()}})).await;
        rvs.push(rv(&o));
    }
    assert_eq!(api.server.watch_history_len("", "v1", "configmaps"), cap);
    // The last `cap` changes are there, each as it was ...
    let from = rvs[300 - cap - 1];
    let lines = watch_from(&api, from, "", cap + 10).await;
    assert_eq!(lines.len(), cap);
    for (k, (_, l)) in lines.iter().enumerate() {
        let i = 300 - cap + k;
        assert_eq!(l["type"], "MODIFIED");
        assert_eq!(rv(&l["object"]), rvs[i]);
        assert_eq!(l["object"]["data"]["v"], (i + 1).to_string());
    }
    // ... and anything older is expired.
    let older = rvs[300 - cap - 2];
    assert_expired(&watch_from(&api, older, "", 10).await, older);
}
/// Stored objects keep managedFields compactly; every way of reading an object shows each
/// `fieldsV1` as the object a real server shows.
#[tokio::test]
async fn every_read_shows_managed_fields_as_objects() {
    let api = Api::with_rec(no_controllers()).await;
    let start = list_rv(&api).await;
    let path = format!("{CMS}/owned");
    let applied = api
        .apply(
            &path,
            "tester",
            &configmap("owned", json!({"team": "blue"}), json!({"k": "v"})),
        )
        .await;
    assert!(applied.status == 201, "{}", applied.text);
    let modified = merge(&api, "owned", json!({"data": {"other": "x"}})).await;
    let expected_fields =
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:team": {}}}});
    let check = |what: &str, obj: &Value| {
        let entries = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: managedFields in {obj}"));
        assert!(!entries.is_empty(), "{what}");
        for e in entries {
            assert!(e["fieldsV1"].is_object(), "{what}: {e}");
        }
        let tester = entries
            .iter()
            .find(|e| e["manager"] == "tester")
            .unwrap_or_else(|| panic!("{what}: the applier's entry in {obj}"));
        assert_eq!(tester["fieldsV1"], expected_fields, "{what}");
    };
    check("apply response", &applied.json());
    check("patch response", &modified);
    check("get", &api.get(&path).await.json());
    check("list", &api.get(CMS).await.json()["items"][0]);
    let meta_list = api
        .request(
            "GET",
            CMS,
            None,
            None,
            Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
        )
        .await
        .json();
    check("metadata-only list", &meta_list["items"][0]);
    let replayed = watch_from(&api, start, "", 10).await;
    assert_eq!(replayed.len(), 2);
    for (_, l) in &replayed {
        check("watch from history", &l["object"]);
    }
    let from = rv(&modified);
    let live = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        merge(
            &api,
            "owned",
            json!({"metadata": {"labels": {"more": "y"}}}),
        )
        .await
    };
    let (lines, _) = tokio::join!(watch_from(&api, from, "", 10), live);
    assert_eq!(lines.len(), 1);
    check("live watch", &lines[0].1["object"]);
    let initial = watch_from(&api, 0, "", 10).await;
    check("initial watch events", &initial[0].1["object"]);
}
