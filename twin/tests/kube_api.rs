//! The twin's Kubernetes API server driven by the real kube-rs client, built from the
//! kubeconfig the twin writes: verbs and Status errors, watches (the in-stream 410,
//! streaming lists, bookmarks, timeouts), auth, discovery and CRDs, and the controllers — node
//! lifecycle, Deployments, eviction and recreation, DaemonSets. (The pod and service proxies
//! are `pod_proxy.rs`'s.)
//! Waits use watchers or bounded polls under a timeout; nothing sleeps to synchronise.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use twin::kube::{KubeSpec, KubeTwin};

const TOKEN: &str = "twin-test-token";
const WAIT: Duration = Duration::from_secs(20);

async fn start() -> KubeTwin {
    harness::proxmox::tls::install_default_provider();
    KubeTwin::start(KubeSpec {
        token: TOKEN.into(),
        time_scale: 0.01,
        timing: Default::default(),
    })
    .await
    .unwrap()
}

async fn config(t: &KubeTwin) -> Config {
    let kc = Kubeconfig::from_yaml(&t.kubeconfig_yaml("twin", "tester")).unwrap();
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    // 503s are answers here (the proxy canary), not something to retry.
    cfg.default_retry = false;
    cfg
}

async fn client(t: &KubeTwin) -> Client {
    Client::try_from(config(t).await).unwrap()
}

/// Poll `f` until it returns Some, within WAIT.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(WAIT, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if let Some(v) = f().await {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, data: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "t"}},
        "data": {"k": data},
    }))
    .unwrap()
}

fn ready_status(node: &Node) -> Option<(String, Option<String>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| {
            t.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

fn join(t: &KubeTwin, name: &str, cp: bool) {
    let labels = BTreeMap::from([(
        "spaceships.work/environment".to_string(),
        "production".to_string(),
    )]);
    t.join_node(name, labels, &format!("uuid-{name}"), cp)
        .unwrap();
}

fn pod_running_ready(p: &Pod) -> bool {
    let Some(s) = &p.status else { return false };
    s.phase.as_deref() == Some("Running")
        && s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn deployment(name: &str, replicas: i32, tolerate_unreachable: Option<i64>) -> Deployment {
    let mut spec = json!({"containers": [{"name": "web", "image": "nginx:1.27"}]});
    if let Some(s) = tolerate_unreachable {
        spec["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": s}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }))
    .unwrap()
}

async fn running_pods(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(pod_running_ready)
        .collect()
}

#[tokio::test]
async fn configmap_verbs_and_status_errors() {
    let t = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&t).await, "default");
    let pp = PostParams::default();

    let created = api.create(&pp, &cm("a", "1")).await.unwrap();
    let uid = created.uid().unwrap();
    let rv1 = created.resource_version().unwrap();
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.metadata.generation, Some(1));

    let e = api_status(api.create(&pp, &cm("a", "1")).await.unwrap_err());
    assert!(e.is_already_exists(), "{e:?}");
    assert_eq!(e.code, 409);

    let got = api.get("a").await.unwrap();
    assert_eq!(got.uid().as_deref(), Some(uid.as_str()));

    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );

    // replace: fresh resourceVersion succeeds, stale one is a Conflict
    let mut next = got.clone();
    next.data = Some(BTreeMap::from([("k".into(), "2".into())]));
    let replaced = api.replace("a", &pp, &next).await.unwrap();
    assert_ne!(replaced.resource_version().unwrap(), rv1);
    let e = api_status(api.replace("a", &pp, &next).await.unwrap_err());
    assert!(e.is_conflict(), "{e:?}");

    // patches
    let merged = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.as_ref().unwrap()["m"], "x");
    assert_eq!(merged.data.as_ref().unwrap()["k"], "2");
    let strategic = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"s": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.labels()["s"], "y");
    // JSON patch (kube's typed Patch::Json needs the json-patch crate: send it raw)
    let req = axum::http::Request::patch("/api/v1/namespaces/default/configmaps/a")
        .header("Content-Type", "application/json-patch+json")
        .body(
            json!([
                {"op": "replace", "path": "/data/k", "value": "3"},
                {"op": "remove", "path": "/data/m"}
            ])
            .to_string()
            .into_bytes(),
        )
        .unwrap();
    let jsonp: ConfigMap = api.clone().into_client().request(req).await.unwrap();
    assert_eq!(jsonp.data.as_ref().unwrap().get("m"), None);
    assert_eq!(jsonp.data.as_ref().unwrap()["k"], "3");

    // server-side apply: creates, then merges; fieldManager recorded
    let ssa = PatchParams::apply("clusterproof").force();
    let applied = api
        .patch(
            "b",
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "b"}, "data": {"x": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap()["x"], "1");
    let applied = api
        .patch(
            "b",
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "b"}, "data": {"y": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap()["y"], "2");
    assert!(
        applied
            .managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some("clusterproof"))
    );
    let e = api_status(
        api.patch(
            "c",
            &PatchParams::default(),
            &Patch::Apply(json!({"metadata": {"name": "c"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));

    // pagination
    for i in 0..5 {
        api.create(&pp, &cm(&format!("p{i}"), "x")).await.unwrap();
    }
    let page = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 4);
    assert_eq!(
        rest.metadata.resource_version,
        page.metadata.resource_version
    );
    let by_label = api
        .list(
            &ListParams::default()
                .labels("app=t")
                .fields("metadata.name=p1"),
        )
        .await
        .unwrap();
    assert_eq!(by_label.items.len(), 1);

    // delete answers with a Status, then NotFound
    let del = api.delete("a", &DeleteParams::default()).await.unwrap();
    let status = del.right().expect("a Status for an immediate delete");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let e = api_status(api.get("a").await.unwrap_err());
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.code, 404);
    let e = api_status(api.delete("a", &DeleteParams::default()).await.unwrap_err());
    assert!(e.is_not_found());

    // a namespace that does not exist
    let other: Api<ConfigMap> = Api::namespaced(client(&t).await, "nowhere");
    let e = api_status(other.create(&pp, &cm("z", "1")).await.unwrap_err());
    assert!(e.is_not_found(), "{e:?}");
    t.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_version_answers() {
    let t = start().await;
    let yaml = t.kubeconfig_yaml("twin", "tester");
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("twin-tester"));
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(t.url().as_str()));
    assert!(cluster.certificate_authority_data.is_some());
    assert!(t.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let good = client(&t).await;
    let v = good.apiserver_version().await.unwrap();
    assert_eq!(v.git_version, "v1.34.2");

    let mut cfg = config(&t).await;
    cfg.auth_info.token = Some("wrong".to_string().into());
    let bad = Client::try_from(cfg).unwrap();
    let e = api_status(
        Api::<ConfigMap>::default_namespaced(bad)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));

    let mut cfg = config(&t).await;
    cfg.auth_info.token = None;
    let anonymous = Client::try_from(cfg).unwrap();
    let e = api_status(
        Api::<Node>::all(anonymous)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 401);
    t.shutdown().await;
}

#[tokio::test]
async fn watcher_sees_added_modified_deleted_and_old_versions_get_410() {
    let t = start().await;
    let c = client(&t).await;
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    let cfg = watcher::Config::default().labels("app=t");
    let mut events = watcher(api.clone(), cfg).default_backoff().boxed();

    // Initial list of an empty selection.
    let first = tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Some(watcher::Event::Init)), "{first:?}");
    let done = tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(done, Some(watcher::Event::InitDone)), "{done:?}");

    let pp = PostParams::default();
    api.create(&pp, &cm("w", "1")).await.unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(WAIT, events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(watcher::Event::Apply(o)) => seen.push(format!("apply:{}", o.data.unwrap()["k"])),
            Some(watcher::Event::Delete(o)) => seen.push(format!("delete:{}", o.name_any())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["apply:1", "apply:2", "delete:w"]);

    // A raw watch from a compacted resourceVersion: in-stream ERROR with code 410.
    let rv = api
        .create(&pp, &cm("old", "1"))
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    api.patch(
        "old",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    // Let the watcher catch up with those two changes before compacting.
    for _ in 0..2 {
        tokio::time::timeout(WAIT, events.try_next())
            .await
            .unwrap()
            .unwrap();
    }
    t.compact();
    let mut raw = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, raw.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(s)) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // A compaction does not break an established watch (as with etcd): the running
    // watcher, already at the newest resourceVersion, goes on seeing changes.
    api.create(&pp, &cm("after", "1")).await.unwrap();
    match tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(watcher::Event::Apply(o)) => assert_eq!(o.name_any(), "after"),
        other => panic!("unexpected {other:?}"),
    }
    t.shutdown().await;
}

#[tokio::test]
async fn streaming_lists_bookmarks_and_watch_timeouts() {
    let t = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&t).await, "default");
    for n in ["s1", "s2"] {
        api.create(&PostParams::default(), &cm(n, "1"))
            .await
            .unwrap();
    }
    // sendInitialEvents: ADDED for each object, then the initial-events-end BOOKMARK.
    let cfg = watcher::Config::default().streaming_lists().labels("app=t");
    let mut events = watcher(api.clone(), cfg).boxed();
    let mut names = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(watcher::Event::Init) => {}
            Some(watcher::Event::InitApply(o)) => names.push(o.name_any()),
            Some(watcher::Event::InitDone) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(names, ["s1", "s2"]);

    // A raw watch with timeoutSeconds=1 and bookmarks ends on its own, after sending
    // the current objects and at least one BOOKMARK (every 60 s, scaled).
    let wp = WatchParams::default().timeout(1); // bookmarks are on by default
    let all: Vec<_> =
        tokio::time::timeout(WAIT, api.watch(&wp, "0").await.unwrap().collect::<Vec<_>>())
            .await
            .expect("the server ends the watch after timeoutSeconds");
    let added = all
        .iter()
        .filter(|e| matches!(e, Ok(WatchEvent::Added(_))))
        .count();
    let bookmarks = all
        .iter()
        .filter(|e| matches!(e, Ok(WatchEvent::Bookmark(_))))
        .count();
    assert_eq!(added, 2);
    assert!(bookmarks >= 1, "{all:?}");
    t.shutdown().await;
}

#[tokio::test]
async fn node_lifecycle_follows_kubelet_and_cni() {
    let t = start().await;
    let c = client(&t).await;
    let nodes: Api<Node> = Api::all(c.clone());
    join(&t, "cp-1", true);
    join(&t, "w-1", false);

    let n = nodes.get("w-1").await.unwrap();
    let (st, reason) = ready_status(&n).unwrap();
    assert_eq!(
        (st.as_str(), reason.as_deref()),
        ("False", Some("KubeletNotReady"))
    );
    let msg = n
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(
        msg.contains("network plugin is not ready: cni config uninitialized"),
        "{msg}"
    );
    assert_eq!(
        n.status
            .as_ref()
            .unwrap()
            .node_info
            .as_ref()
            .unwrap()
            .system_uuid,
        "uuid-w-1"
    );
    assert_eq!(n.labels()["kubernetes.io/hostname"], "w-1");
    assert!(
        !n.labels()
            .contains_key("node-role.kubernetes.io/control-plane")
    );
    let cp = nodes.get("cp-1").await.unwrap();
    assert_eq!(cp.labels()["node-role.kubernetes.io/control-plane"], "");
    assert!(taint_keys(&n).contains(&"node.kubernetes.io/not-ready:NoSchedule".to_string()));

    // The kubelet renews its Lease.
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let first = eventually("the lease", || async {
        leases.get_opt("w-1").await.unwrap()
    })
    .await;
    let t0 = first.spec.as_ref().unwrap().renew_time.clone().unwrap();
    eventually("a lease renewal", || async {
        let l = leases.get("w-1").await.unwrap();
        (l.spec.unwrap().renew_time.unwrap() != t0).then_some(())
    })
    .await;

    // CNI ready → Ready.
    t.set_cni_ready("w-1", true).unwrap();
    let ready = |want: &'static str| {
        move |n: Option<&Node>| n.and_then(ready_status).is_some_and(|(s, _)| s == want)
    };
    tokio::time::timeout(WAIT, await_condition(nodes.clone(), "w-1", ready("True")))
        .await
        .unwrap()
        .unwrap();
    let n = nodes.get("w-1").await.unwrap();
    assert!(
        taint_keys(&n)
            .iter()
            .all(|k| !k.starts_with("node.kubernetes.io/")),
        "{:?}",
        taint_keys(&n)
    );

    // Kubelet dies → Unknown + unreachable taints after the (scaled) 40 s grace period.
    let stopped = std::time::Instant::now();
    t.set_kubelet_alive("w-1", false).unwrap();
    let n = tokio::time::timeout(
        WAIT,
        await_condition(nodes.clone(), "w-1", ready("Unknown")),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert!(
        stopped.elapsed() >= Duration::from_millis(300),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(
        ready_status(&n).unwrap().1.as_deref(),
        Some("NodeStatusUnknown")
    );
    let n = eventually("unreachable taints", || async {
        let n = nodes.get("w-1").await.unwrap();
        let k = taint_keys(&n);
        (k.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
            && k.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()))
        .then_some(n)
    })
    .await;
    let cond = n.status.unwrap().conditions.unwrap();
    let ready_cond = cond.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        ready_cond.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );

    // Alive again → Ready, taints gone.
    t.set_kubelet_alive("w-1", true).unwrap();
    tokio::time::timeout(WAIT, await_condition(nodes.clone(), "w-1", ready("True")))
        .await
        .unwrap()
        .unwrap();
    eventually("taints removed", || async {
        let n = nodes.get("w-1").await.unwrap();
        taint_keys(&n)
            .iter()
            .all(|k| !k.starts_with("node.kubernetes.io/"))
            .then_some(())
    })
    .await;
    assert!(t.set_kubelet_alive("nope", true).is_err());
    t.shutdown().await;
}

#[tokio::test]
async fn deployment_runs_replicas_on_ready_workers() {
    let t = start().await;
    let c = client(&t).await;
    join(&t, "cp-1", true);
    for w in ["w-1", "w-2"] {
        join(&t, w, false);
    }
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 2, None))
        .await
        .unwrap();

    // No node is Ready yet: the pods stay Pending and unscheduled.
    let pending = eventually("pods created", || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items;
        (l.len() == 2).then_some(l)
    })
    .await;
    assert!(pending.iter().all(|p| !pod_running_ready(p)));

    for w in ["cp-1", "w-1", "w-2"] {
        t.set_cni_ready(w, true).unwrap();
    }
    tokio::time::timeout(
        WAIT,
        await_condition(
            deploys.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let running = running_pods(&pods, "web").await;
    assert_eq!(running.len(), 2);
    let mut on: Vec<String> = running
        .iter()
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    on.sort();
    // Spread over the workers; the control plane keeps its NoSchedule taint.
    assert_eq!(on, ["w-1", "w-2"]);
    let d = deploys.get("web").await.unwrap();
    let s = d.status.unwrap();
    assert_eq!(
        (
            s.ready_replicas,
            s.available_replicas,
            s.observed_generation
        ),
        (Some(2), Some(2), Some(1))
    );

    // The Eviction API removes a pod; its ReplicaSet replaces it.
    let victim = running[0].name_any();
    pods.evict(&victim, &Default::default()).await.unwrap();
    eventually("a replacement after eviction", || async {
        let names: Vec<String> = running_pods(&pods, "web")
            .await
            .iter()
            .map(|p| p.name_any())
            .collect();
        (names.len() == 2 && !names.contains(&victim)).then_some(())
    })
    .await;

    // Scale down through the main resource; the pods follow.
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("scale down", || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items;
        (l.len() == 1).then_some(())
    })
    .await;

    // Deleting the deployment collects its replicaset and pods.
    deploys
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("garbage collection", || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    t.shutdown().await;
}

#[tokio::test]
async fn evicted_pods_are_recreated_on_another_node_daemonset_stays() {
    let t = start().await;
    let c = client(&t).await;
    for w in ["w-1", "w-2"] {
        join(&t, w, false);
        t.set_cni_ready(w, true).unwrap();
    }
    let nodes: Api<Node> = Api::all(c.clone());
    for w in ["w-1", "w-2"] {
        tokio::time::timeout(
            WAIT,
            await_condition(nodes.clone(), w, |n: Option<&Node>| {
                n.and_then(ready_status).is_some_and(|(s, _)| s == "True")
            }),
        )
        .await
        .unwrap()
        .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    // tolerationSeconds 30 → 0.3 s at this time scale.
    deploys
        .create(&PostParams::default(), &deployment("api", 1, Some(30)))
        .await
        .unwrap();
    let dss: Api<DaemonSet> = Api::namespaced(c.clone(), "kube-system");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "agent:1"}],
                    "tolerations": [{"operator": "Exists"}]}}},
    }))
    .unwrap();
    dss.create(&PostParams::default(), &ds).await.unwrap();
    let sys_pods: Api<Pod> = Api::namespaced(c.clone(), "kube-system");
    eventually("daemonset ready", || async {
        let s = dss.get("agent").await.unwrap().status?;
        (s.desired_number_scheduled == 2 && s.number_ready == 2).then_some(())
    })
    .await;

    let first = eventually("api pod running", || async {
        running_pods(&pods, "api").await.into_iter().next()
    })
    .await;
    let victim_node = first.spec.as_ref().unwrap().node_name.clone().unwrap();
    let other = if victim_node == "w-1" { "w-2" } else { "w-1" };
    let agent_on_victim = sys_pods
        .list(
            &ListParams::default()
                .labels("app=agent")
                .fields(&format!("spec.nodeName={victim_node}")),
        )
        .await
        .unwrap()
        .items[0]
        .name_any();

    t.set_kubelet_alive(&victim_node, false).unwrap();
    let replacement = eventually("replacement pod on the other node", || async {
        let running = running_pods(&pods, "api").await;
        running
            .into_iter()
            .find(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(other))
    })
    .await;
    assert_ne!(replacement.name_any(), first.name_any());
    // The evicted pod stays Terminating while its kubelet is gone (it cannot confirm).
    let evicted = pods.get(&first.name_any()).await.unwrap();
    assert!(
        evicted.metadata.deletion_timestamp.is_some(),
        "the evicted pod is Terminating"
    );
    assert_eq!(evicted.metadata.deletion_grace_period_seconds, Some(30));
    // The DaemonSet pod on the dead node tolerates unreachable: still there.
    assert!(sys_pods.get_opt(&agent_on_victim).await.unwrap().is_some());
    t.shutdown().await;
}

#[tokio::test]
async fn crds_become_servable_and_discovery_works() {
    let t = start().await;
    let c = client(&t).await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}}]},
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            crds.clone(),
            "widgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();

    let gvk = kube::core::GroupVersionKind::gvk("example.com", "v1", "Widget");
    let (ar, _caps) = kube::discovery::pinned_kind(&c, &gvk).await.unwrap();
    let widgets: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3},
    }))
    .unwrap();
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["size"], 3);
    let status = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ok": true}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["ok"], true);

    let discovery = kube::Discovery::new(c.clone()).run().await.unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "coordination.k8s.io",
        "gateway.networking.k8s.io",
        "example.com",
    ] {
        assert!(
            groups.iter().any(|x| x == g),
            "missing group {g:?} in {groups:?}"
        );
    }

    // Deleting the definition removes the type.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let e = api_status(widgets.list(&ListParams::default()).await.unwrap_err());
    assert!(e.is_not_found());
    t.shutdown().await;
}
