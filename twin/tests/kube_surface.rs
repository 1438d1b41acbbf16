//! The twin's API surface as clients other than the harness see it, over real sockets with
//! the real kube-rs client: server-side Tables (lists, single objects, watches,
//! `includeObject`) and metadata-only answers, the health endpoints and the failures the twin
//! can be told about, Endpoints/EndpointSlices that follow Ready pods, and request accounting
//! (`/metrics` and the Rust accessor) — for the Kubernetes and the Proxmox twin.
//! Waits use watches (`await_condition`) under a timeout; nothing sleeps to synchronise.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::await_condition;
use kube::{Client, Config};
use serde_json::{Value, json};
use twin::kube::{KubeSpec, KubeTwin};

const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const WAIT: Duration = Duration::from_secs(20);

async fn start() -> KubeTwin {
    harness::proxmox::tls::install_default_provider();
    KubeTwin::start(KubeSpec {
        token: "surface-token".into(),
        time_scale: 0.01,
        timing: Default::default(),
    })
    .await
    .unwrap()
}

async fn client_from(yaml: &str) -> Client {
    let kc = Kubeconfig::from_yaml(yaml).unwrap();
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    Client::try_from(cfg).unwrap()
}

async fn client(t: &KubeTwin) -> Client {
    client_from(&t.kubeconfig_yaml("twin", "tester")).await
}

fn get(path: &str, accept: &str) -> axum::http::Request<Vec<u8>> {
    axum::http::Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap()
}

fn join(t: &KubeTwin, name: &str, cp: bool) {
    t.join_node(name, BTreeMap::new(), &format!("uuid-{name}"), cp)
        .unwrap();
}

async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, cond: F) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&K) -> bool,
{
    let found = tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), name, |o: Option<&K>| o.is_some_and(&cond)),
    )
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    .unwrap();
    found.unwrap()
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn cells(table: &Value) -> Vec<Vec<Value>> {
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn tables_answer_kubectl_and_metadata_answers_kube_rs() {
    let t = start().await;
    let c = client(&t).await;
    join(&t, "cp-1", true);
    join(&t, "w-1", false);
    t.set_cni_ready("cp-1", true).unwrap();
    let nodes: Api<Node> = Api::all(c.clone());
    wait_for(&nodes, "cp-1", "cp-1 Ready", node_ready).await;

    let table: Value = c
        .request(get("/api/v1/nodes?limit=500", KUBECTL_ACCEPT))
        .await
        .unwrap();
    assert_eq!(
        (table["kind"].as_str(), table["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    assert!(table["metadata"]["resourceVersion"].is_string());
    let cols: Vec<(&str, i64)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Name", 0),
            ("Status", 0),
            ("Roles", 0),
            ("Age", 0),
            ("Version", 0),
            ("Internal-IP", 1),
            ("External-IP", 1),
            ("OS-Image", 1),
            ("Kernel-Version", 1),
            ("Container-Runtime", 1)
        ]
    );
    let rows = cells(&table);
    assert_eq!(
        &rows[0][..3],
        [json!("cp-1"), json!("Ready"), json!("control-plane")]
    );
    assert_eq!(
        &rows[1][..3],
        [json!("w-1"), json!("NotReady"), json!("<none>")]
    );
    assert_eq!(rows[1][4], json!(twin::kube::GIT_VERSION));
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    // One object, the full object in the row, a bad includeObject, the v1beta1 Table.
    let one: Value = c
        .request(get(
            "/api/v1/nodes/w-1?includeObject=Object",
            KUBECTL_ACCEPT,
        ))
        .await
        .unwrap();
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    assert_eq!(one["rows"][0]["object"]["kind"], "Node");
    let e = c
        .request::<Value>(get("/api/v1/nodes?includeObject=All", KUBECTL_ACCEPT))
        .await
        .unwrap_err();
    assert!(
        matches!(e, kube::Error::Api(s) if s.code == 400 && s.message.contains("includeObject"))
    );
    let beta: Value = c
        .request(get(
            "/api/v1/nodes",
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        ))
        .await
        .unwrap();
    assert_eq!(beta["apiVersion"], "meta.k8s.io/v1beta1");
    // Types without a printer get Name and Created At; errors stay Status objects.
    let crds: Value = c
        .request(get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            KUBECTL_ACCEPT,
        ))
        .await
        .unwrap();
    assert_eq!(crds["columnDefinitions"][1]["name"], "Created At");
    let missing = c
        .request::<Value>(get("/api/v1/nodes/nope", KUBECTL_ACCEPT))
        .await
        .unwrap_err();
    assert!(matches!(missing, kube::Error::Api(s) if s.reason == "NotFound"));

    // kube-rs' metadata API gets PartialObjectMetadata(List).
    let meta = nodes.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(meta.items.len(), 2);
    assert_eq!(
        nodes
            .get_metadata("w-1")
            .await
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("w-1")
    );

    // A Table watch (kubectl get -w): one-row Tables, column definitions only in the first.
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for name in ["a", "b"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let watch = get(
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
        KUBECTL_ACCEPT,
    );
    let events: Vec<WatchEvent<Value>> = tokio::time::timeout(
        WAIT,
        c.request_events::<Value>(watch)
            .await
            .unwrap()
            .take(2)
            .try_collect(),
    )
    .await
    .unwrap()
    .unwrap();
    let tables: Vec<Value> = events
        .into_iter()
        .map(|e| match e {
            WatchEvent::Added(t) => t,
            other => panic!("expected ADDED, got {other:?}"),
        })
        .collect();
    assert_eq!(tables[0]["kind"], "Table");
    assert_eq!(tables[0]["columnDefinitions"][1]["name"], "Data");
    assert!(tables[1]["columnDefinitions"].is_null());
    assert_eq!(cells(&tables[0])[0][..2], [json!("a"), json!(1)]);
    assert_eq!(cells(&tables[1])[0][0], "b");
    t.shutdown().await;
}

async fn raw_text(c: &Client, path: &str) -> Result<String, kube::Error> {
    c.request_text(get(path, "*/*")).await
}

#[tokio::test]
async fn health_endpoints_pass_and_fail_like_kube_apiserver() {
    let t = start().await;
    let c = client(&t).await;
    let ready = raw_text(&c, "/readyz?verbose").await.unwrap();
    assert!(
        ready.starts_with("[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n"),
        "{ready}"
    );
    assert!(
        ready.ends_with("[+]shutdown ok\nreadyz check passed\n"),
        "{ready}"
    );
    assert_eq!(raw_text(&c, "/livez").await.unwrap(), "ok");
    assert!(
        raw_text(&c, "/healthz?verbose")
            .await
            .unwrap()
            .ends_with("healthz check passed\n")
    );

    assert!(t.fail_health_check("no-such-check", "x").is_err());
    t.fail_health_check("etcd", "context deadline exceeded")
        .unwrap();
    let e = raw_text(&c, "/readyz?verbose").await.unwrap_err();
    let kube::Error::Api(s) = e else {
        panic!("{e:?}")
    };
    assert_eq!(s.code, 500);
    assert!(
        s.message.contains(
            "[-]etcd failed: reason withheld\n[-]etcd-readiness failed: reason withheld\n"
        ),
        "{}",
        s.message
    );
    assert!(s.message.contains("readyz check failed"), "{}", s.message);
    let kube::Error::Api(s) = raw_text(&c, "/livez/etcd").await.unwrap_err() else {
        panic!()
    };
    assert!(
        s.message
            .contains("internal server error: context deadline exceeded"),
        "{}",
        s.message
    );
    let excluded = raw_text(&c, "/readyz?exclude=etcd&exclude=etcd-readiness&verbose")
        .await
        .unwrap();
    assert!(excluded.contains("[+]etcd excluded: ok\n"), "{excluded}");
    t.heal_health_check("etcd");
    assert_eq!(raw_text(&c, "/readyz").await.unwrap(), "ok");
    t.shutdown().await;
}

#[tokio::test]
async fn endpoints_and_slices_follow_ready_pods() {
    let t = start().await;
    let c = client(&t).await;
    join(&t, "cp-1", true);
    join(&t, "w-1", false);
    join(&t, "w-2", false);
    for n in ["cp-1", "w-1", "w-2"] {
        t.set_cni_ready(n, true).unwrap();
    }
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                    "ports": [{"name": "http", "containerPort": 8080}]}]}}},
    }))
    .unwrap();
    Api::<Deployment>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();

    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let ready = |e: &Endpoints| {
        e.subsets
            .as_ref()
            .and_then(|s| s.first())
            .and_then(|s| s.addresses.as_ref())
            .is_some_and(|a| a.len() == 2)
    };
    let ep = wait_for(&eps, "web", "two ready addresses", ready).await;
    let subset = &ep.subsets.unwrap()[0];
    let ports = subset.ports.as_ref().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("http"), 8080)
    );
    let addr = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(
        addr.target_ref.as_ref().unwrap().kind.as_deref(),
        Some("Pod")
    );
    let node = addr.node_name.clone().unwrap();

    let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), "default");
    let listed = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let slice = &listed.items[0];
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.endpoints.len(), 2);
    assert!(
        slice
            .endpoints
            .iter()
            .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
    );

    // The node of one pod stops: once its pods are marked not ready, the address moves to
    // notReadyAddresses and the slice says not ready, not serving.
    t.set_kubelet_alive(&node, false).unwrap();
    let moved = wait_for(&eps, "web", "a not-ready address", |e: &Endpoints| {
        e.subsets.iter().flatten().any(|s| {
            s.not_ready_addresses
                .as_ref()
                .is_some_and(|a| a.iter().any(|a| a.node_name.as_deref() == Some(&node)))
        })
    })
    .await;
    assert!(!moved.subsets.unwrap().iter().any(|s| {
        s.addresses
            .iter()
            .flatten()
            .any(|a| a.node_name.as_deref() == Some(&node))
    }));
    let slice = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap()
        .items
        .remove(0);
    let on_node = slice
        .endpoints
        .iter()
        .find(|e| e.node_name.as_deref() == Some(&node))
        .unwrap();
    let cond = on_node.conditions.as_ref().unwrap();
    assert_eq!(
        (cond.ready, cond.serving, cond.terminating),
        (Some(false), Some(false), Some(false))
    );

    // default/kubernetes points at the control plane's API server.
    let k = eps.get("kubernetes").await.unwrap();
    let s = &k.subsets.unwrap()[0];
    assert_eq!(s.addresses.as_ref().unwrap().len(), 1);
    assert_eq!(s.ports.as_ref().unwrap()[0].port, 6443);
    assert!(slices.get("kubernetes").await.is_ok());

    // The Service goes: so do its Endpoints and slices.
    Api::<Service>::namespaced(c.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(eps.clone(), "web", |o: Option<&Endpoints>| o.is_none()),
    )
    .await
    .unwrap()
    .unwrap();
    t.shutdown().await;
}

#[tokio::test]
async fn client_requests_are_counted_and_served_as_metrics() {
    let t = start().await;
    let c = client(&t).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "m"}, "data": {"k": "v"}})).unwrap();
    let before = t.request_counts();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.get("m").await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    cms.patch(
        "m",
        &PatchParams::apply("surface").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "w"}})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &serde_json::from_value(json!({"metadata": {"name": "d"}})).unwrap(),
    )
    .await
    .unwrap();
    cms.delete("m", &DeleteParams::default()).await.unwrap();
    let missing = cms.get("m").await.unwrap_err();
    assert!(matches!(missing, kube::Error::Api(s) if s.code == 404));
    let d = t.request_counts().since(&before);
    assert_eq!(d.count("POST", "configmaps"), 2);
    assert_eq!(d.count("GET", "configmaps"), 2);
    assert_eq!(d.count("LIST", "configmaps"), 1);
    assert_eq!(d.count("APPLY", "configmaps"), 1);
    assert_eq!(d.count("DELETE", "configmaps"), 1);
    assert_eq!((d.total, d.mutating), (7, 4));
    let not_found = d.by_key.iter().find(|(k, _)| k.code == 404).unwrap().0;
    assert_eq!(
        (not_found.verb.as_str(), not_found.scope.as_str()),
        ("GET", "resource")
    );
    assert!(d.by_key.keys().any(|k| k.dry_run == "All" && k.code == 201));

    // The twin's own HTTP components are not counted.
    let own = client_from(&t.component_kubeconfig_yaml()).await;
    let before = t.request_counts();
    Api::<ConfigMap>::namespaced(own, "default")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(t.request_counts().since(&before).total, 0);

    let metrics = c.request_text(get("/metrics", "text/plain")).await.unwrap();
    assert!(
        metrics.contains("# TYPE apiserver_request_total counter\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 1\n"),
        "{metrics}"
    );
    // Without a token: 401, and that is counted too.
    let anon = anonymous_status(&t, "/metrics").await;
    assert_eq!(anon, 401);
    assert!(
        t.request_counts()
            .by_key
            .keys()
            .any(|k| k.code == 401 && k.subresource == "/metrics")
    );
    t.shutdown().await;
}

/// The status of a GET sent without credentials.
async fn anonymous_status(t: &KubeTwin, path: &str) -> u16 {
    let kc = Kubeconfig::from_yaml(&t.kubeconfig_yaml("twin", "anon")).unwrap();
    let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    cfg.auth_info.token = None;
    cfg.default_retry = false;
    let anon = Client::try_from(cfg).unwrap();
    match anon.request_text(get(path, "*/*")).await {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn proxmox_requests_are_counted_by_path_template() {
    use harness::model::lab::{Proxmox as ProxmoxLab, SecretSource, Tls};
    use harness::proxmox::ProxmoxClient;
    use twin::proxmox::{ProxmoxSpec, ProxmoxTwin, default_inventory};
    harness::proxmox::tls::install_default_provider();
    let t = ProxmoxTwin::start(ProxmoxSpec {
        inventory: default_inventory(),
        token_id: "t@pve!x".into(),
        token_secret: "s".into(),
        faults: vec![],
        time_scale: 0.01,
        timing: Default::default(),
        ha_managed: false,
        placement: Default::default(),
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = |secret: &str| {
        let f = dir.path().join(secret);
        std::fs::write(&f, secret).unwrap();
        ProxmoxClient::new(
            &ProxmoxLab {
                url: t.url(),
                token_id: "t@pve!x".into(),
                token_secret: SecretSource::File(f),
                tls: Tls::Insecure,
            },
            Duration::from_secs(5),
        )
        .unwrap()
    };
    let c = client("s");
    let nodes = c.nodes().await.unwrap();
    for n in &nodes {
        c.vms(&n.node).await.unwrap();
    }
    c.version().await.unwrap();
    let counts = t.request_counts();
    assert_eq!(counts.count("GET", "/nodes"), 1);
    assert_eq!(
        counts.count("GET", "/nodes/{node}/qemu"),
        nodes.len() as u64
    );
    assert_eq!(counts.count("GET", "/version"), 1);
    assert_eq!(counts.mutating, 0, "{counts:?}");
    assert!(counts.by_key.keys().all(|k| k.code == 200));
    // An action is a POST: the one mutating request.
    let vm = t
        .create_vm(&twin::proxmox::VmRequest {
            name: "w-count".into(),
            uuid: "00000000-0000-4000-8000-000000000001".into(),
            cores: 2,
            memory_mib: 2048,
            disk_gib: 10,
            selector: harness::model::selector::StorageSelector::compile(r#"name == "vm_ssd""#)
                .unwrap(),
            pin: None,
            tag: "machine-request.t".into(),
        })
        .unwrap();
    c.vm_action(&vm.node, vm.vmid, harness::proxmox::VmAction::Stop)
        .await
        .unwrap();
    let counts = t.request_counts();
    assert_eq!(counts.mutating, 1, "{counts:?}");
    assert_eq!(
        counts.count("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
        1
    );
    // A wrong secret is answered 401 and counted as such.
    assert!(client("wrong").version().await.is_err());
    let after = t.request_counts().since(&counts);
    assert_eq!(
        after
            .by_key
            .keys()
            .map(|k| (k.method.as_str(), k.path.as_str(), k.code))
            .collect::<Vec<_>>(),
        [("GET", "/version", 401)]
    );
    t.shutdown().await;
}
