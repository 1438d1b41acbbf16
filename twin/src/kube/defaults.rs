//! Per-type defaulting and validation the API server applies on create and update (a small
//! part of Kubernetes' `PrepareForCreate`, defaulters and admission plugins): pod status and
//! the `DefaultTolerationSeconds` tolerations, workload spec defaults and selector checks,
//! service ClusterIPs, namespace labels, CRD status.

use serde_json::{Value, json};

use super::select::{LabelSelector, labels_of, string_map};
use super::status::ApiError;
use super::store::{Store, now_time};
use super::types::ResourceType;

/// Taint keys of the node lifecycle controller.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Seconds the `DefaultTolerationSeconds` admission plugin lets a pod stay on a failed node.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

fn set_default(obj: &mut Value, field: &str, v: Value) {
    if obj.get(field).is_none_or(Value::is_null)
        && let Value::Object(m) = obj
    {
        m.insert(field.into(), v);
    }
}

fn remove(obj: &mut Value, field: &str) {
    if let Value::Object(m) = obj {
        m.remove(field);
    }
}

fn is(rt: &ResourceType, group: &str, plural: &str) -> bool {
    !rt.from_crd && rt.gvr.group == group && rt.gvr.plural == plural
}

/// Defaults and validation before an object is first stored.
pub fn on_create(store: &mut Store, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    if is(rt, "", "pods") {
        pod_defaults(obj, store.default_toleration_secs);
    } else if is(rt, "apps", "deployments") {
        workload_defaults(rt, obj, true)?;
        set_default(
            &mut obj["spec"],
            "strategy",
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        set_default(&mut obj["spec"], "revisionHistoryLimit", json!(10));
        set_default(&mut obj["spec"], "progressDeadlineSeconds", json!(600));
        obj["status"] = json!({});
    } else if is(rt, "apps", "replicasets") || is(rt, "apps", "statefulsets") {
        workload_defaults(rt, obj, true)?;
        obj["status"] = json!({"replicas": 0});
    } else if is(rt, "apps", "daemonsets") {
        workload_defaults(rt, obj, false)?;
        set_default(
            &mut obj["spec"],
            "updateStrategy",
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
        );
        obj["status"] = json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0});
    } else if is(rt, "", "namespaces") {
        let name = obj["metadata"]["name"].clone();
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        obj["status"] = json!({"phase": "Active"});
    } else if is(rt, "", "services") {
        service_defaults(store, obj);
    } else if is(rt, "apiextensions.k8s.io", "customresourcedefinitions") {
        crd_status(obj)?;
    } else if rt.status && !is(rt, "", "nodes") {
        remove(obj, "status");
    }
    Ok(())
}

/// Checks and carried-over fields on update.
pub fn on_update(rt: &ResourceType, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    if is(rt, "", "services") {
        for f in ["clusterIP", "clusterIPs"] {
            if new["spec"].get(f).is_none_or(Value::is_null)
                && let Some(v) = old["spec"].get(f)
            {
                new["spec"][f] = v.clone();
            }
        }
    } else if is(rt, "", "namespaces") {
        let name = new["metadata"]["name"].clone();
        new["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
    } else if is(rt, "apiextensions.k8s.io", "customresourcedefinitions") {
        crd_status(new)?;
    } else if is(rt, "apps", "deployments")
        || is(rt, "apps", "replicasets")
        || is(rt, "apps", "daemonsets")
        || is(rt, "apps", "statefulsets")
    {
        check_selector(rt, new)?;
    }
    Ok(())
}

fn pod_defaults(obj: &mut Value, toleration_secs: i64) {
    let spec = &mut obj["spec"];
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "serviceAccountName", json!("default"));
    // The Priority admission plugin resolves the two built-in classes
    // (`pkg/apis/scheduling` `SystemCriticalPriority` = 2000000000).
    let priority = match spec["priorityClassName"].as_str() {
        Some("system-node-critical") => 2_000_001_000,
        Some("system-cluster-critical") => 2_000_000_000,
        _ => 0,
    };
    set_default(spec, "priority", json!(priority));
    // DefaultTolerationSeconds: tolerate not-ready and unreachable for 300 s unless the
    // pod already says something about them.
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for key in [TAINT_NOT_READY, TAINT_UNREACHABLE] {
        let covered = tolerations.iter().any(|t| {
            (t["key"] == json!(key) || (t["key"].is_null() && t["operator"] == "Exists"))
                && (t["effect"].is_null() || t["effect"] == "NoExecute")
        });
        if !covered {
            tolerations.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": toleration_secs}),
            );
        }
    }
    spec["tolerations"] = json!(tolerations);
    let qos = qos_class(spec);
    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
}

/// The pod's QoS class (`pkg/apis/core/v1/helper/qos` `GetPodQOS`): Guaranteed when every
/// container limits CPU and memory to its requests, BestEffort without any request or
/// limit, Burstable otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let any = containers.iter().any(|c| {
        ["requests", "limits"]
            .iter()
            .any(|k| c["resources"][k].as_object().is_some_and(|m| !m.is_empty()))
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][r];
            let request = &c["resources"]["requests"][r];
            !limit.is_null() && (request.is_null() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn workload_defaults(rt: &ResourceType, obj: &mut Value, replicas: bool) -> Result<(), ApiError> {
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    if replicas {
        set_default(&mut obj["spec"], "replicas", json!(1));
    }
    check_selector(rt, obj)
}

/// `spec.selector` must be present and select the template's labels.
fn check_selector(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let sel = &obj["spec"]["selector"];
    if !sel.is_object() {
        return Err(ApiError::invalid(
            &rt.kind,
            name,
            "spec.selector",
            "Required value",
        ));
    }
    let selector = LabelSelector::from_object(sel);
    let labels = string_map(&obj["spec"]["template"]["metadata"]["labels"]);
    if selector.is_empty() || !selector.matches_labels(&labels) {
        return Err(ApiError::invalid(
            &rt.kind,
            name,
            "spec.template.metadata.labels",
            "Invalid value: `selector` does not match template `labels`",
        ));
    }
    Ok(())
}

fn service_defaults(store: &mut Store, obj: &mut Value) {
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    set_default(&mut obj["spec"], "type", json!("ClusterIP"));
    set_default(&mut obj["spec"], "sessionAffinity", json!("None"));
    if obj["spec"]["type"] != "ExternalName" {
        if obj["spec"]["clusterIP"].as_str().is_none_or(str::is_empty) {
            obj["spec"]["clusterIP"] = json!(store.allocate_service_ip());
        }
        let ip = obj["spec"]["clusterIP"].clone();
        set_default(&mut obj["spec"], "clusterIPs", json!([ip]));
        set_default(&mut obj["spec"], "ipFamilies", json!(["IPv4"]));
        set_default(&mut obj["spec"], "ipFamilyPolicy", json!("SingleStack"));
        set_default(&mut obj["spec"], "internalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
            let port = p["port"].clone();
            set_default(p, "targetPort", port);
        }
    }
    obj["status"] = json!({"loadBalancer": {}});
}

/// A definition is named `<plural>.<group>`; the twin accepts its names at once.
fn crd_status(obj: &mut Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = &obj["spec"];
    let (Some(group), Some(plural)) = (spec["group"].as_str(), spec["names"]["plural"].as_str())
    else {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            &name,
            "spec.names.plural",
            "Required value",
        ));
    };
    if name != format!("{plural}.{group}") {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            &name,
            "metadata.name",
            &format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let stored: Vec<Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    let names = spec["names"].clone();
    let now = now_time();
    obj["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    Ok(())
}

/// Whether `labels` of an object satisfy a pod's `nodeSelector`.
pub fn node_selector_matches(pod_spec: &Value, node: &Value) -> bool {
    let labels = labels_of(node);
    string_map(&pod_spec["nodeSelector"])
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}
