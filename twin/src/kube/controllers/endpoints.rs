//! Endpoints and EndpointSlices: the endpoints and EndpointSlice controllers of
//! kube-controller-manager for Services with a selector, and kube-apiserver's own endpoint
//! reconciler for `default/kubernetes`.
//!
//! For a Service with a selector (`pkg/controller/endpoint`, `pkg/controller/endpointslice`,
//! `staging/src/k8s.io/endpointslice`):
//! - a pod is an endpoint when it is not terminal and has an IP (`ShouldPodBeInEndpoints`);
//!   in Endpoints a terminating pod counts only with `publishNotReadyAddresses`;
//! - Endpoints (named after the Service, its labels, `service.kubernetes.io/headless` for
//!   headless Services) list Ready pods under `addresses` and the others under
//!   `notReadyAddresses`, with `nodeName` and a `targetRef` to the pod; subsets group the
//!   addresses that resolve the same ports (a named `targetPort` is looked up in the pod's
//!   container ports, a pod without it is left out for that port);
//! - EndpointSlices (`<service>-xxxxx`, owned by the Service, labelled
//!   `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by:
//!   endpointslice-controller.k8s.io`, `addressType: IPv4`, at most 100 endpoints each) carry
//!   per endpoint `conditions` `ready` (= serving and not terminating, or
//!   `publishNotReadyAddresses`), `serving` (the pod's Ready condition) and `terminating`
//!   (`deletionTimestamp` set), `nodeName`, `zone` (the node's `topology.kubernetes.io/zone`)
//!   and `targetRef`; a Service without endpoints keeps one empty slice.
//!
//! For `default/kubernetes` (`pkg/controlplane/reconcilers/endpointsadapter.go`): Endpoints
//! labelled `endpointslice.kubernetes.io/skip-mirror: "true"` and an EndpointSlice named
//! `kubernetes` labelled only `kubernetes.io/service-name`, listing the sorted addresses of
//! the API servers on port 6443 (`https`) — in a Talos cluster one per control-plane node.
//! The twin counts a control plane's API server as up while its node's Ready condition is
//! not `Unknown` (the real lease reconciler drops it after 15 s without renewal; the twin
//! ties it to the node grace period).
//!
//! Work is proportional to change: each pass reads the store's change history since the
//! previous one and re-syncs only the Services it touches (a changed Service; Services in
//! the namespace of a changed pod whose selector matches the pod before or after; a changed
//! or deleted Endpoints/EndpointSlice; a changed control-plane node for `kubernetes`). Only
//! the first pass, or one after the history was compacted, looks at every Service.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::super::select::{Filter, LabelSelector, labels_of, string_map};
use super::super::store::{Event, Store, now_micro};
use super::super::types::Gvr;
use super::{
    condition_status, deleting, gvr_nodes, gvr_pods, name_of, ns_of, remove, uid_of, write,
};

const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const HEADLESS: &str = "service.kubernetes.io/headless";
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
const ZONE: &str = "topology.kubernetes.io/zone";
/// kube-controller-manager `--max-endpoints-per-slice`.
const MAX_PER_SLICE: usize = 100;
/// kube-apiserver's secure port, which the `kubernetes` Service targets.
const APISERVER_PORT: i64 = 6443;

fn gvr_services() -> Gvr {
    Gvr::new("", "v1", "services")
}
fn gvr_endpoints() -> Gvr {
    Gvr::new("", "v1", "endpoints")
}
pub(crate) fn gvr_slices() -> Gvr {
    Gvr::new("discovery.k8s.io", "v1", "endpointslices")
}

/// What the controller remembers between passes.
#[derive(Default)]
pub(crate) struct EndpointsSync {
    /// Every change up to this resourceVersion has been handled.
    synced: Option<u64>,
}

type Key = (String, String);

/// One pass: re-sync the Services that changes since the last pass touch. Returns how
/// many it looked at.
pub(crate) fn reconcile(store: &mut Store, st: &mut EndpointsSync) -> usize {
    let relevant = |g: &Gvr| {
        matches!(
            (g.group.as_str(), g.plural.as_str()),
            ("", "services")
                | ("", "endpoints")
                | ("", "pods")
                | ("discovery.k8s.io", "endpointslices")
        )
    };
    let dirty = match st.synced.map(|rv| store.events_since(rv, relevant)) {
        Some(Ok(events)) => touched(store, &events),
        _ => everything(store),
    };
    for key in &dirty {
        sync(store, key);
    }
    // The controller's own writes are done: the next pass starts after them.
    st.synced = Some(store.resource_version());
    dirty.len()
}

fn everything(store: &Store) -> BTreeSet<Key> {
    let mut keys: BTreeSet<Key> = store
        .list(&gvr_services(), None, &Filter::default())
        .iter()
        .map(|s| (ns_of(s).to_string(), name_of(s).to_string()))
        .collect();
    // Leftovers of Services that are gone.
    for s in store.list(&gvr_slices(), None, &Filter::default()) {
        if let Some(svc) = s["metadata"]["labels"][SERVICE_NAME].as_str() {
            keys.insert((ns_of(&s).to_string(), svc.to_string()));
        }
    }
    for e in store.list(&gvr_endpoints(), None, &Filter::default()) {
        keys.insert((ns_of(&e).to_string(), name_of(&e).to_string()));
    }
    keys
}

fn selector_of(svc: &Value) -> BTreeMap<String, String> {
    string_map(&svc["spec"]["selector"])
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty()
        && LabelSelector::from_object(&json!({"matchLabels": selector})).matches_labels(labels)
}

/// The Services a batch of changes touches.
fn touched(store: &Store, events: &[Event]) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    let mut services_in: BTreeMap<String, Vec<Arc<Value>>> = BTreeMap::new();
    for ev in events {
        let k = &ev.key;
        let versions = || {
            ev.old
                .iter()
                .map(|o| o.as_ref())
                .chain(std::iter::once(ev.object.as_ref()))
        };
        match (k.gvr.group.as_str(), k.gvr.plural.as_str()) {
            ("", "services") | ("", "endpoints") => {
                keys.insert((k.namespace.clone(), k.name.clone()));
            }
            ("discovery.k8s.io", "endpointslices") => {
                for v in versions() {
                    if let Some(svc) = v["metadata"]["labels"][SERVICE_NAME].as_str() {
                        keys.insert((k.namespace.clone(), svc.to_string()));
                    }
                }
            }
            ("", "pods") => {
                let services = services_in.entry(k.namespace.clone()).or_insert_with(|| {
                    store.list(&gvr_services(), Some(&k.namespace), &Filter::default())
                });
                for v in versions() {
                    let labels = labels_of(v);
                    for svc in services.iter() {
                        if selects(&selector_of(svc), &labels) {
                            keys.insert((k.namespace.clone(), name_of(svc).to_string()));
                        }
                    }
                }
            }
            ("", "nodes")
                if versions().any(|v| v["metadata"]["labels"].get(CONTROL_PLANE).is_some()) =>
            {
                keys.insert(("default".into(), "kubernetes".into()));
            }
            _ => {}
        }
    }
    keys
}

/// Bring one Service's Endpoints and EndpointSlices to what its pods say.
fn sync(store: &mut Store, (ns, name): &Key) {
    let svc = store.get(&gvr_services(), ns, name);
    let Some(svc) = svc.filter(|s| !deleting(s)) else {
        cleanup(store, ns, name);
        return;
    };
    if ns == "default" && name == "kubernetes" {
        sync_apiserver(store);
        return;
    }
    if selector_of(&svc).is_empty() || svc["spec"]["type"] == "ExternalName" {
        // Endpoints of such Services are the user's (or the mirroring controller's).
        return;
    }
    let selector = selector_of(&svc);
    let pods: Vec<Arc<Value>> = store
        .list(&gvr_pods(), Some(ns), &Filter::default())
        .into_iter()
        .filter(|p| selects(&selector, &labels_of(p)) && in_endpoints(p))
        .collect();
    sync_endpoints(store, &svc, &pods);
    sync_slices(store, &svc, &pods);
}

/// `ShouldPodBeInEndpoints(pod, includeTerminating=true)`.
fn in_endpoints(pod: &Value) -> bool {
    let st = &pod["status"];
    !matches!(st["phase"].as_str(), Some("Succeeded" | "Failed"))
        && (st["podIP"].as_str().is_some_and(|ip| !ip.is_empty())
            || st["podIPs"].as_array().is_some_and(|a| !a.is_empty()))
}

fn pod_ip(pod: &Value) -> String {
    pod["status"]["podIP"]
        .as_str()
        .or_else(|| pod["status"]["podIPs"][0]["ip"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn pod_ready(pod: &Value) -> bool {
    condition_status(pod, "Ready") == Some("True")
}

/// `FindPort`: a numeric targetPort as is, a named one from the pod's container ports.
fn target_port(pod: &Value, port: &Value) -> Option<i64> {
    let target = port.get("targetPort").unwrap_or(&port["port"]);
    if let Some(n) = target.as_i64() {
        return Some(n);
    }
    let wanted = target.as_str()?;
    if let Ok(n) = wanted.parse::<i64>() {
        return Some(n);
    }
    let proto = port["protocol"].as_str().unwrap_or("TCP");
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == wanted && p["protocol"].as_str().unwrap_or("TCP") == proto)
        .and_then(|p| p["containerPort"].as_i64())
}

/// The ports one pod serves for the Service, in the Service's order.
fn pod_ports(svc: &Value, pod: &Value) -> Vec<Value> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let n = target_port(pod, p)?;
            let mut port = json!({"name": p["name"].as_str().unwrap_or(""), "port": n,
                "protocol": p["protocol"].as_str().unwrap_or("TCP")});
            if let Some(a) = p.get("appProtocol") {
                port["appProtocol"] = a.clone();
            }
            Some(port)
        })
        .collect()
}

fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": ns_of(pod), "name": name_of(pod), "uid": uid_of(pod)})
}

fn headless(svc: &Value) -> bool {
    svc["spec"]["clusterIP"] == "None"
}

/// The Service's labels for what the controllers write from it.
fn derived_labels(svc: &Value) -> serde_json::Map<String, Value> {
    let mut labels = svc["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if headless(svc) {
        labels.insert(HEADLESS.into(), json!(""));
    }
    labels
}

fn sync_endpoints(store: &mut Store, svc: &Value, pods: &[Arc<Value>]) {
    let tolerate = svc["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    // Port set → (ports, ready addresses, not-ready addresses), as RepackSubsets groups them.
    type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    let has_ports = svc["spec"]["ports"]
        .as_array()
        .is_some_and(|p| !p.is_empty());
    for pod in pods {
        if deleting(pod) && !tolerate {
            continue;
        }
        let ports = pod_ports(svc, pod);
        if ports.is_empty() && (has_ports || !headless(svc)) {
            continue;
        }
        let mut addr = json!({"ip": pod_ip(pod)});
        if let Some(n) = pod["spec"]["nodeName"].as_str() {
            addr["nodeName"] = json!(n);
        }
        addr["targetRef"] = target_ref(pod);
        let entry = subsets
            .entry(Value::Array(ports.clone()).to_string())
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if tolerate || pod_ready(pod) {
            entry.1.push(addr);
        } else {
            entry.2.push(addr);
        }
    }
    let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
    let subsets: Vec<Value> = subsets
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut s = json!({});
            if !ready.is_empty() {
                s["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = json!(not_ready);
            }
            if !ports.is_empty() {
                s["ports"] = json!(ports);
            }
            s
        })
        .collect();
    put_endpoints(store, svc, derived_labels(svc), subsets);
}

/// Create or update `svc`'s Endpoints when labels or subsets differ.
fn put_endpoints(
    store: &mut Store,
    svc: &Value,
    labels: serde_json::Map<String, Value>,
    subsets: Vec<Value>,
) {
    let (ns, name) = (ns_of(svc), name_of(svc));
    let g = gvr_endpoints();
    let subsets_value = if subsets.is_empty() {
        Value::Null
    } else {
        json!(subsets)
    };
    match store.get(&g, ns, name) {
        Some(cur) => {
            let same = cur["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                == labels
                && cur.get("subsets").cloned().unwrap_or(Value::Null) == subsets_value;
            if same {
                return;
            }
            let mut new = (*cur).clone();
            new["metadata"]["labels"] = Value::Object(labels);
            new["metadata"]["annotations"][TRIGGER_TIME] = json!(now_micro());
            set_or_remove(&mut new, "subsets", subsets_value);
            write(store, &g, new);
        }
        None => {
            let mut ep = json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns, "labels": labels,
                    "annotations": {TRIGGER_TIME: now_micro()}}});
            set_or_remove(&mut ep, "subsets", subsets_value);
            create(store, &g, ns, ep);
        }
    }
}

fn set_or_remove(obj: &mut Value, field: &str, v: Value) {
    if let Value::Object(m) = obj {
        if v.is_null() {
            m.remove(field);
        } else {
            m.insert(field.into(), v);
        }
    }
}

fn create(store: &mut Store, gvr: &Gvr, ns: &str, obj: Value) {
    if let Err(e) = store.create(gvr, ns, obj, false) {
        tracing::warn!("kube twin: cannot create {} in {ns}: {e}", gvr.plural);
    }
}

fn slice_endpoint(store: &Store, svc: &Value, pod: &Value) -> Value {
    let serving = pod_ready(pod);
    let terminating = deleting(pod);
    let tolerate = svc["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    let mut ep = json!({"addresses": [pod_ip(pod)],
        "conditions": {"ready": tolerate || (serving && !terminating), "serving": serving, "terminating": terminating},
        "targetRef": target_ref(pod)});
    if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        ep["nodeName"] = json!(node);
        if let Some(zone) = store
            .get(&gvr_nodes(), "", node)
            .and_then(|n| n["metadata"]["labels"][ZONE].as_str().map(str::to_string))
        {
            ep["zone"] = json!(zone);
        }
    }
    ep
}

fn sync_slices(store: &mut Store, svc: &Value, pods: &[Arc<Value>]) {
    // Port set → endpoints; each group is cut into slices of at most MAX_PER_SLICE.
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for pod in pods {
        let ports = pod_ports(svc, pod);
        if ports.is_empty() && !svc["spec"]["ports"].as_array().is_none_or(Vec::is_empty) {
            continue;
        }
        groups
            .entry(Value::Array(ports.clone()).to_string())
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(slice_endpoint(store, svc, pod));
    }
    let mut desired: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
    for (_, (ports, mut eps)) in groups {
        eps.sort_by(|a, b| a["addresses"][0].as_str().cmp(&b["addresses"][0].as_str()));
        for chunk in eps.chunks(MAX_PER_SLICE) {
            desired.push((ports.clone(), chunk.to_vec()));
        }
    }
    if desired.is_empty() {
        // The placeholder slice of a Service without endpoints.
        desired.push((Vec::new(), Vec::new()));
    }
    let mut labels = derived_labels(svc);
    labels.remove(SERVICE_NAME);
    labels.remove(MANAGED_BY);
    labels.insert(SERVICE_NAME.into(), json!(name_of(svc)));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER));
    let existing = managed_slices(store, ns_of(svc), name_of(svc));
    let g = gvr_slices();
    for (i, (ports, eps)) in desired.iter().enumerate() {
        let ports_value = if ports.is_empty() {
            Value::Null
        } else {
            json!(ports)
        };
        match existing.get(i) {
            Some(cur) => {
                let same = cur["metadata"]["labels"].as_object() == Some(&labels)
                    && cur["endpoints"] == json!(eps)
                    && cur.get("ports").cloned().unwrap_or(Value::Null) == ports_value
                    && cur["addressType"] == "IPv4";
                if same {
                    continue;
                }
                let mut new = (**cur).clone();
                new["metadata"]["labels"] = Value::Object(labels.clone());
                new["metadata"]["annotations"][TRIGGER_TIME] = json!(now_micro());
                new["addressType"] = json!("IPv4");
                new["endpoints"] = json!(eps);
                set_or_remove(&mut new, "ports", ports_value);
                write(store, &g, new);
            }
            None => {
                let mut slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"generateName": format!("{}-", name_of(svc)), "namespace": ns_of(svc),
                        "labels": labels.clone(), "annotations": {TRIGGER_TIME: now_micro()},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name_of(svc),
                            "uid": uid_of(svc), "controller": true, "blockOwnerDeletion": true}]},
                    "addressType": "IPv4", "endpoints": eps});
                set_or_remove(&mut slice, "ports", ports_value);
                create(store, &g, ns_of(svc), slice);
            }
        }
    }
    for extra in existing.iter().skip(desired.len()) {
        remove(
            store,
            &g,
            extra,
            "endpointslice controller: slice no longer needed",
        );
    }
}

fn managed_slices(store: &Store, ns: &str, svc: &str) -> Vec<Arc<Value>> {
    let mut slices: Vec<Arc<Value>> = store
        .list(&gvr_slices(), Some(ns), &Filter::default())
        .into_iter()
        .filter(|s| {
            s["metadata"]["labels"][SERVICE_NAME] == svc
                && s["metadata"]["labels"][MANAGED_BY] == CONTROLLER
        })
        .collect();
    slices.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    slices
}

/// The Service is gone: its controller-made Endpoints and slices go too.
fn cleanup(store: &mut Store, ns: &str, name: &str) {
    if let Some(ep) = store.get(&gvr_endpoints(), ns, name)
        && ep["metadata"]["annotations"].get(TRIGGER_TIME).is_some()
    {
        remove(
            store,
            &gvr_endpoints(),
            &ep,
            "endpoints controller: service deleted",
        );
    }
    for s in managed_slices(store, ns, name) {
        remove(
            store,
            &gvr_slices(),
            &s,
            "endpointslice controller: service deleted",
        );
    }
}

/// kube-apiserver's endpoint reconciler for `default/kubernetes`.
fn sync_apiserver(store: &mut Store) {
    let mut ips: Vec<String> = store
        .list(&gvr_nodes(), None, &Filter::default())
        .iter()
        .filter(|n| n["metadata"]["labels"].get(CONTROL_PLANE).is_some())
        .filter(|n| condition_status(n, "Ready") != Some("Unknown"))
        .filter_map(|n| {
            n["status"]["addresses"]
                .as_array()?
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .and_then(|a| a["address"].as_str().map(str::to_string))
        })
        .collect();
    ips.sort();
    ips.dedup();
    let Some(svc) = store.get(&gvr_services(), "default", "kubernetes") else {
        return;
    };
    let port = json!({"name": "https", "port": APISERVER_PORT, "protocol": "TCP"});
    let mut subset = json!({"ports": [port.clone()]});
    if !ips.is_empty() {
        subset["addresses"] = json!(ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>());
    }
    let labels = [(SKIP_MIRROR.to_string(), json!("true"))]
        .into_iter()
        .collect();
    put_endpoints(store, &svc, labels, vec![subset]);
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    let labels = json!({SERVICE_NAME: "kubernetes"});
    let g = gvr_slices();
    match store.get(&g, "default", "kubernetes") {
        Some(cur) => {
            if cur["endpoints"] == json!(endpoints)
                && cur["metadata"]["labels"] == labels
                && cur["ports"] == json!([port])
            {
                return;
            }
            let mut new = (*cur).clone();
            new["metadata"]["labels"] = labels;
            new["addressType"] = json!("IPv4");
            new["endpoints"] = json!(endpoints);
            new["ports"] = json!([port]);
            write(store, &g, new);
        }
        None => create(
            store,
            &g,
            "default",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
                "addressType": "IPv4", "endpoints": endpoints, "ports": [port]}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str, ip: &str, ready: bool) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": "w1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn setup() -> (Store, EndpointsSync) {
        let mut s = Store::new("t".into());
        s.create(&gvr_services(), "default", json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}), false).unwrap();
        (s, EndpointsSync::default())
    }

    fn put_status(s: &mut Store, p: Value) {
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        let created = s.create(&gvr_pods(), "default", p.clone(), false).unwrap();
        let mut with_status = (*created).clone();
        with_status["status"] = p["status"].clone();
        s.update(
            &gvr_pods(),
            "default",
            &name,
            with_status,
            super::super::super::store::Sub::Status,
            false,
        )
        .unwrap();
    }

    #[test]
    fn ready_and_not_ready_pods_become_addresses_and_slice_conditions() {
        let (mut s, mut st) = setup();
        put_status(&mut s, pod("a", "web", "10.244.1.3", true));
        put_status(&mut s, pod("b", "web", "10.244.1.2", false));
        put_status(&mut s, pod("c", "other", "10.244.1.9", true));
        reconcile(&mut s, &mut st);
        let ep = s.get(&gvr_endpoints(), "default", "web").unwrap();
        assert_eq!(ep["metadata"]["labels"], json!({"team": "a"}));
        let subset = &ep["subsets"][0];
        assert_eq!(subset["addresses"][0]["ip"], "10.244.1.3");
        assert_eq!(subset["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(subset["notReadyAddresses"][0]["ip"], "10.244.1.2");
        assert_eq!(
            subset["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        let slices = managed_slices(&s, "default", "web");
        assert_eq!(slices.len(), 1);
        let sl = &slices[0];
        assert!(name_of(sl).starts_with("web-"));
        assert_eq!(sl["metadata"]["labels"][MANAGED_BY], CONTROLLER);
        assert_eq!(sl["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert_eq!(sl["endpoints"][0]["addresses"], json!(["10.244.1.2"]));
        assert_eq!(
            sl["endpoints"][0]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert_eq!(
            sl["endpoints"][1]["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        // A second pass with no changes writes nothing.
        let rv = s.resource_version();
        reconcile(&mut s, &mut st);
        assert_eq!(s.resource_version(), rv);
    }

    #[test]
    fn only_touched_services_resync_and_deleted_services_lose_their_endpoints() {
        let (mut s, mut st) = setup();
        reconcile(&mut s, &mut st);
        let empty = managed_slices(&s, "default", "web");
        assert_eq!(empty.len(), 1, "placeholder slice");
        assert!(
            s.get(&gvr_endpoints(), "default", "web")
                .unwrap()
                .get("subsets")
                .is_none()
        );
        // Someone deletes the slice: it comes back.
        s.delete(
            &gvr_slices(),
            "default",
            name_of(&empty[0]),
            &Default::default(),
            false,
        )
        .unwrap();
        reconcile(&mut s, &mut st);
        assert_eq!(managed_slices(&s, "default", "web").len(), 1);
        let events_before = s.resource_version();
        // A pod no Service selects changes nothing.
        put_status(&mut s, pod("x", "nobody", "10.244.2.2", true));
        let after_pod = s.resource_version();
        reconcile(&mut s, &mut st);
        assert_eq!(s.resource_version(), after_pod);
        assert!(after_pod > events_before);
        s.delete(
            &gvr_services(),
            "default",
            "web",
            &Default::default(),
            false,
        )
        .unwrap();
        reconcile(&mut s, &mut st);
        assert!(s.get(&gvr_endpoints(), "default", "web").is_none());
        assert!(managed_slices(&s, "default", "web").is_empty());
    }

    #[test]
    fn a_pass_looks_only_at_the_services_a_change_touches() {
        let mut s = Store::new("t".into());
        let mut st = EndpointsSync::default();
        for i in 0..200 {
            s.create(
                &gvr_services(),
                "default",
                json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{i}")},
                "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80}]}}),
                false,
            )
            .unwrap();
        }
        // The first pass sees everything: 200 Services and `kubernetes`.
        assert_eq!(reconcile(&mut s, &mut st), 201);
        assert_eq!(reconcile(&mut s, &mut st), 0);
        put_status(&mut s, pod("p", "app-7", "10.244.3.3", true));
        assert_eq!(reconcile(&mut s, &mut st), 1);
        assert_eq!(
            s.get(&gvr_endpoints(), "default", "svc-7").unwrap()["subsets"][0]["addresses"][0]["ip"],
            "10.244.3.3"
        );
        // Changes lost to a compaction mean a full resync, which still finds them.
        put_status(&mut s, pod("q", "app-9", "10.244.3.4", true));
        s.compact();
        assert_eq!(reconcile(&mut s, &mut st), 201);
        assert_eq!(
            s.get(&gvr_endpoints(), "default", "svc-9").unwrap()["subsets"][0]["addresses"][0]["ip"],
            "10.244.3.4"
        );
    }

    #[test]
    fn the_kubernetes_service_lists_control_plane_addresses() {
        let mut s = Store::new("t".into());
        let mut st = EndpointsSync::default();
        for (name, ip, ready) in [
            ("cp2", "10.5.0.3", "True"),
            ("cp1", "10.5.0.2", "False"),
            ("cp3", "10.5.0.4", "Unknown"),
            ("w1", "10.5.0.9", "True"),
        ] {
            let mut labels = json!({});
            if name.starts_with("cp") {
                labels[CONTROL_PLANE] = json!("");
            }
            s.create(&gvr_nodes(), "", json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}], "conditions": [{"type": "Ready", "status": ready}]}}), false).unwrap();
        }
        reconcile(&mut s, &mut st);
        let ep = s.get(&gvr_endpoints(), "default", "kubernetes").unwrap();
        assert_eq!(ep["metadata"]["labels"], json!({SKIP_MIRROR: "true"}));
        assert_eq!(
            ep["subsets"],
            json!([{"addresses": [{"ip": "10.5.0.2"}, {"ip": "10.5.0.3"}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );
        let sl = s.get(&gvr_slices(), "default", "kubernetes").unwrap();
        assert_eq!(
            sl["metadata"]["labels"],
            json!({SERVICE_NAME: "kubernetes"})
        );
        assert_eq!(
            sl["endpoints"][1],
            json!({"addresses": ["10.5.0.3"], "conditions": {"ready": true}})
        );
    }
}
