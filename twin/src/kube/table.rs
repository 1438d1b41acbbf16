//! Server-side printing: `meta.k8s.io/v1` `Table` answers for clients that ask for them, and
//! `PartialObjectMetadata(List)` for metadata-only clients.
//!
//! `kubectl get` sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,
//! application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json` and prints the columns
//! it gets back, so the columns and cells here are the ones kube-apiserver v1.34 computes:
//! `pkg/printers/internalversion/printers.go` (`AddHandlers` column definitions, `printPod`,
//! `printNode`, `printDeployment`, … — the server always generates the wide cells and kubectl
//! hides priority > 0 columns unless `-o wide`), the default convertor of
//! `k8s.io/apiserver/pkg/registry/rest/table.go` (Name, `Created At` as RFC 3339) for types
//! without a printer, and `apiextensions-apiserver/.../tableconvertor` for custom resources
//! (the definition's `additionalPrinterColumns`, or an `Age` date column when it has none;
//! date cells become human durations). Ages use `HumanDuration` of
//! `k8s.io/apimachinery/pkg/util/duration`.
//!
//! Negotiation and `includeObject` follow `apiserver/pkg/endpoints/handlers/response.go`
//! (`asTable`): rows carry a `PartialObjectMetadata` by default (`includeObject=Metadata`), the
//! full object with `Object`, nothing with `None`; any other value is a 400. In a watch only
//! the first event's table carries `columnDefinitions` (the watch encoder switches
//! `NoHeaders` on after it). Accept clauses are tried in order; types the twin cannot write
//! (protobuf, YAML) are skipped, and when nothing matches it answers JSON.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::status::ApiError;
use super::store::Store;
use super::types::{Gvr, ResourceType};

/// How an answer to a GET is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Table {
        group_version: &'static str,
        include: Include,
    },
    Metadata {
        group_version: &'static str,
    },
}

/// `includeObject` of a Table request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Format {
    /// The format for an `Accept` header and the `includeObject` query parameter.
    pub fn negotiate(
        accept: Option<&str>,
        include_object: Option<&str>,
    ) -> Result<Format, ApiError> {
        for clause in accept.unwrap_or("").split(',') {
            let mut parts = clause.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
                continue;
            }
            let params: BTreeMap<String, String> = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let Some(target) = params.get("as") else {
                return Ok(Format::Json);
            };
            let group_version = match (
                params.get("g").map(String::as_str),
                params.get("v").map(String::as_str),
            ) {
                (Some("meta.k8s.io"), Some("v1")) => "meta.k8s.io/v1",
                (Some("meta.k8s.io"), Some("v1beta1")) => "meta.k8s.io/v1beta1",
                _ => continue,
            };
            match target.as_str() {
                "Table" => {
                    let include = match include_object.unwrap_or("") {
                        "" | "Metadata" => Include::Metadata,
                        "Object" => Include::Object,
                        "None" => Include::None,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "Unable to convert to Table as requested: includeObject: Unsupported value: {other:?}: supported values: \"None\", \"Metadata\", \"Object\""
                            )));
                        }
                    };
                    return Ok(Format::Table {
                        group_version,
                        include,
                    });
                }
                "PartialObjectMetadata" | "PartialObjectMetadataList" => {
                    return Ok(Format::Metadata { group_version });
                }
                _ => continue,
            }
        }
        Ok(Format::Json)
    }
}

/// One column definition.
#[derive(Clone, Debug)]
struct Column {
    name: String,
    ty: String,
    format: String,
    priority: i64,
    description: String,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "type": self.ty, "format": self.format,
            "description": self.description, "priority": self.priority})
    }
}

// ObjectMeta's swagger documentation, which the printers use for these two columns.
const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// (name, type, priority, description); the `Name` column gets format `name`.
type Def = (&'static str, &'static str, i64, &'static str);

const NAME: Def = ("Name", "string", 0, NAME_DOC);
const AGE: Def = ("Age", "string", 0, AGE_DOC);
const CONTAINERS: Def = (
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Def = (
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);

const POD: [Def; 9] = [
    NAME,
    (
        "Ready",
        "string",
        0,
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    (
        "Status",
        "string",
        0,
        "The aggregate status of the containers in this pod.",
    ),
    (
        "Restarts",
        "string",
        0,
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    (
        "IP",
        "string",
        1,
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    ),
    (
        "Node",
        "string",
        1,
        "NodeName indicates in which node this pod is scheduled.",
    ),
    (
        "Nominated Node",
        "string",
        1,
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
    ),
    (
        "Readiness Gates",
        "string",
        1,
        "If specified, all readiness gates will be evaluated for pod readiness.",
    ),
];
const NODE: [Def; 10] = [
    NAME,
    ("Status", "string", 0, "The status of the node"),
    ("Roles", "string", 0, "The roles of the node"),
    AGE,
    (
        "Version",
        "string",
        0,
        "Kubelet Version reported by the node.",
    ),
    (
        "Internal-IP",
        "string",
        1,
        "List of addresses reachable to the node.",
    ),
    (
        "External-IP",
        "string",
        1,
        "List of addresses reachable to the node.",
    ),
    (
        "OS-Image",
        "string",
        1,
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    (
        "Kernel-Version",
        "string",
        1,
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    (
        "Container-Runtime",
        "string",
        1,
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    ),
];
const NAMESPACE: [Def; 3] = [
    NAME,
    ("Status", "string", 0, "The status of the namespace"),
    AGE,
];
const SERVICE: [Def; 7] = [
    NAME,
    (
        "Type",
        "string",
        0,
        "type determines how the Service is exposed.",
    ),
    (
        "Cluster-IP",
        "string",
        0,
        "clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    (
        "External-IP",
        "string",
        0,
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    (
        "Port(s)",
        "string",
        0,
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    (
        "Selector",
        "string",
        1,
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];
const ENDPOINTS: [Def; 3] = [
    NAME,
    (
        "Endpoints",
        "string",
        0,
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];
const ENDPOINT_SLICE: [Def; 5] = [
    NAME,
    (
        "AddressType",
        "string",
        0,
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    (
        "Ports",
        "string",
        0,
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    (
        "Endpoints",
        "string",
        0,
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];
const DEPLOYMENT: [Def; 8] = [
    NAME,
    ("Ready", "string", 0, "Number of the pod with ready state"),
    (
        "Up-to-date",
        "string",
        0,
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    (
        "Available",
        "string",
        0,
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    (
        "Selector",
        "string",
        1,
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    ),
];
const REPLICA_SET: [Def; 8] = [
    NAME,
    (
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired replicas.",
    ),
    (
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of replicas.",
    ),
    (
        "Ready",
        "integer",
        0,
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    (
        "Selector",
        "string",
        1,
        "Selector is a label query over pods that should match the replica count.",
    ),
];
const DAEMON_SET: [Def; 11] = [
    NAME,
    (
        "Desired",
        "integer",
        0,
        "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
    ),
    (
        "Current",
        "integer",
        0,
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    (
        "Ready",
        "integer",
        0,
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    (
        "Up-to-date",
        "integer",
        0,
        "The total number of nodes that are running updated daemon pod",
    ),
    (
        "Available",
        "integer",
        0,
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    (
        "Node Selector",
        "string",
        0,
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    (
        "Selector",
        "string",
        1,
        "A label query over pods that are managed by the daemon set.",
    ),
];
const STATEFUL_SET: [Def; 5] = [
    NAME,
    ("Ready", "string", 0, "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];
const LEASE: [Def; 3] = [
    NAME,
    (
        "Holder",
        "string",
        0,
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];
const CONFIG_MAP: [Def; 3] = [
    NAME,
    ("Data", "string", 0, "Data contains the configuration data."),
    AGE,
];
const SECRET: [Def; 4] = [
    NAME,
    (
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    ("Data", "string", 0, "Data contains the secret data."),
    AGE,
];
const SERVICE_ACCOUNT: [Def; 3] = [
    NAME,
    (
        "Secrets",
        "string",
        0,
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];
const EVENT: [Def; 10] = [
    (
        "Last Seen",
        "string",
        0,
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    (
        "Type",
        "string",
        0,
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    (
        "Reason",
        "string",
        0,
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    (
        "Object",
        "string",
        0,
        "The object that this event is about.",
    ),
    (
        "Subobject",
        "string",
        1,
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
    ),
    (
        "Source",
        "string",
        1,
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    (
        "Message",
        "string",
        0,
        "A human-readable description of the status of this operation.",
    ),
    (
        "First Seen",
        "string",
        1,
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    ),
    (
        "Count",
        "string",
        1,
        "The number of times this event has occurred.",
    ),
    ("Name", "string", 1, NAME_DOC),
];

type CellFn = fn(&Value, DateTime<Utc>) -> Vec<Value>;

/// What turns one object into cells.
enum Cells {
    Builtin(CellFn),
    /// A custom resource: the Name column, then one (type, JSONPath) per column.
    Custom(Vec<(String, String)>),
    /// Name and `Created At`.
    Default,
}

/// The columns and cells of one resource type.
pub(crate) struct Printer {
    columns: Vec<Column>,
    cells: Cells,
}

fn columns(defs: &[Def]) -> Vec<Column> {
    defs.iter()
        .map(|(name, ty, priority, description)| Column {
            name: (*name).into(),
            ty: (*ty).into(),
            format: if *name == "Name" && *description == NAME_DOC {
                "name".into()
            } else {
                String::new()
            },
            priority: *priority,
            description: (*description).into(),
        })
        .collect()
}

impl Printer {
    /// The printer kube-apiserver (or the apiextensions server, for a custom resource) has
    /// for `rt`.
    pub fn for_type(store: &Store, rt: &ResourceType) -> Printer {
        let crd = store.get(
            &Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            "",
            &format!("{}.{}", rt.gvr.plural, rt.gvr.group),
        );
        if let Some(crd) = crd.filter(|_| !rt.gvr.group.is_empty()) {
            return Printer::custom(&crd, &rt.gvr.version);
        }
        let builtin: Option<(&[Def], CellFn)> =
            match (rt.gvr.group.as_str(), rt.gvr.plural.as_str()) {
                ("", "pods") => Some((&POD, pod_cells)),
                ("", "nodes") => Some((&NODE, node_cells)),
                ("", "namespaces") => Some((&NAMESPACE, namespace_cells)),
                ("", "services") => Some((&SERVICE, service_cells)),
                ("", "endpoints") => Some((&ENDPOINTS, endpoints_cells)),
                ("", "configmaps") => Some((&CONFIG_MAP, config_map_cells)),
                ("", "secrets") => Some((&SECRET, secret_cells)),
                ("", "serviceaccounts") => Some((&SERVICE_ACCOUNT, service_account_cells)),
                ("", "events") | ("events.k8s.io", "events") => Some((&EVENT, event_cells)),
                ("apps", "deployments") => Some((&DEPLOYMENT, deployment_cells)),
                ("apps", "replicasets") => Some((&REPLICA_SET, replica_set_cells)),
                ("apps", "daemonsets") => Some((&DAEMON_SET, daemon_set_cells)),
                ("apps", "statefulsets") => Some((&STATEFUL_SET, stateful_set_cells)),
                ("coordination.k8s.io", "leases") => Some((&LEASE, lease_cells)),
                ("discovery.k8s.io", "endpointslices") => {
                    Some((&ENDPOINT_SLICE, endpoint_slice_cells))
                }
                _ => None,
            };
        match builtin {
            Some((defs, f)) => Printer {
                columns: columns(defs),
                cells: Cells::Builtin(f),
            },
            None => Printer {
                columns: vec![
                    Column {
                        name: "Name".into(),
                        ty: "string".into(),
                        format: "name".into(),
                        priority: 0,
                        description: NAME_DOC.into(),
                    },
                    Column {
                        name: "Created At".into(),
                        ty: "date".into(),
                        format: String::new(),
                        priority: 0,
                        description: AGE_DOC.into(),
                    },
                ],
                cells: Cells::Default,
            },
        }
    }

    fn custom(crd: &Value, version: &str) -> Printer {
        let served = crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == version);
        let declared: Vec<Value> = served
            .and_then(|v| v["additionalPrinterColumns"].as_array().cloned())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| {
                vec![
                    json!({"name": "Age", "type": "date", "description": AGE_DOC,
                    "jsonPath": ".metadata.creationTimestamp"}),
                ]
            });
        let mut cols = columns(&[NAME]);
        let mut paths = Vec::new();
        for c in &declared {
            let path = c["jsonPath"].as_str().unwrap_or_default().to_string();
            let description = c["description"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!("Custom resource definition column (in JSONPath format): {path}")
                });
            let ty = c["type"].as_str().unwrap_or("string").to_string();
            cols.push(Column {
                name: c["name"].as_str().unwrap_or_default().into(),
                ty: ty.clone(),
                format: c["format"].as_str().unwrap_or_default().into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                description,
            });
            paths.push((ty, path));
        }
        Printer {
            columns: cols,
            cells: Cells::Custom(paths),
        }
    }

    fn row(&self, obj: &Value, include: Include, group_version: &str, now: DateTime<Utc>) -> Value {
        let cells = match &self.cells {
            Cells::Builtin(f) => f(obj, now),
            Cells::Custom(paths) => {
                let mut c = vec![json!(name(obj))];
                for (ty, path) in paths {
                    c.push(custom_cell(ty, jsonpath_first(obj, path), now));
                }
                c
            }
            Cells::Default => vec![
                json!(name(obj)),
                json!(
                    obj["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("0001-01-01T00:00:00Z")
                ),
            ],
        };
        let mut row = json!({"cells": cells});
        if let Some(c) = row_conditions(obj) {
            row["conditions"] = c;
        }
        row["object"] = match include {
            Include::Object => obj.clone(),
            Include::Metadata => partial(obj, group_version),
            Include::None => Value::Null,
        };
        row
    }

    /// A Table of `objects`; `metadata` is the list metadata (or the object's
    /// resourceVersion); without `headers` the column definitions are left out.
    pub fn table(
        &self,
        objects: &[&Value],
        metadata: Value,
        include: Include,
        group_version: &str,
        headers: bool,
        now: DateTime<Utc>,
    ) -> Value {
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| self.row(o, include, group_version, now))
            .collect();
        let cols = if headers {
            Value::Array(self.columns.iter().map(Column::to_json).collect())
        } else {
            Value::Null
        };
        json!({"kind": "Table", "apiVersion": group_version, "metadata": metadata,
            "columnDefinitions": cols, "rows": rows})
    }
}

/// `PartialObjectMetadata` of an object.
pub(crate) fn partial(obj: &Value, group_version: &str) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": group_version, "metadata": obj["metadata"].clone()})
}

fn list_meta(body: &Value) -> Value {
    let mut meta = json!({});
    for k in ["resourceVersion", "continue", "remainingItemCount"] {
        if let Some(v) = body["metadata"].get(k) {
            meta[k] = v.clone();
        }
    }
    meta
}

/// Encode the answer to a GET (a `<Kind>List` or one object of `rt`) in `format`.
pub(crate) fn encode(
    store: &Store,
    rt: &ResourceType,
    body: Value,
    format: &Format,
    now: DateTime<Utc>,
) -> Value {
    let is_list =
        body["kind"].as_str() == Some(rt.list_kind().as_str()) && body.get("items").is_some();
    match format {
        Format::Json => body,
        Format::Metadata { group_version } if is_list => {
            let items: Vec<Value> = body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| partial(o, group_version))
                .collect();
            json!({"kind": "PartialObjectMetadataList", "apiVersion": group_version,
                "metadata": list_meta(&body), "items": items})
        }
        Format::Metadata { group_version } => partial(&body, group_version),
        Format::Table {
            group_version,
            include,
        } => {
            let printer = Printer::for_type(store, rt);
            if is_list {
                let items: Vec<&Value> = body["items"].as_array().into_iter().flatten().collect();
                printer.table(&items, list_meta(&body), *include, group_version, true, now)
            } else {
                let meta = json!({"resourceVersion": body["metadata"]["resourceVersion"].clone()});
                printer.table(&[&body], meta, *include, group_version, true, now)
            }
        }
    }
}

// ---- helpers over objects ----

fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn len_of(v: &Value) -> i64 {
    match v {
        Value::Array(a) => a.len() as i64,
        Value::Object(m) => m.len() as i64,
        _ => 0,
    }
}

fn or<'a>(v: &'a str, default: &'a str) -> &'a str {
    if v.is_empty() { default } else { v }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `HumanDuration` (apimachinery `util/duration`): ~2–3 significant figures.
pub(crate) fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_milliseconds() / 1000; // truncates toward zero, like int(d.Seconds())
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
fn since(v: &Value, now: DateTime<Utc>) -> String {
    match time(v) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    json!(since(&obj["metadata"]["creationTimestamp"], now))
}

/// `labels.FormatLabels`: `k=v` sorted by key, `<none>` when empty.
fn format_labels(m: &Value) -> String {
    let pairs: BTreeMap<&str, &str> = m
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), s(v)))
        .collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `LabelSelectorAsSelector(...).String()`: requirements sorted by key — `k=v` for
/// matchLabels, `k in (a,b)`, `k notin (a,b)`, `k`, `!k` for expressions.
fn selector_string(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel["matchLabels"].as_object().into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", s(v))));
    }
    for e in arr(&sel["matchExpressions"]) {
        let key = s(&e["key"]).to_string();
        let mut values: Vec<&str> = arr(&e["values"]).iter().map(s).collect();
        values.sort_unstable();
        let text = match s(&e["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".into(),
        };
        reqs.push((key, text));
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when it is empty.
fn format_label_selector(sel: &Value) -> String {
    let text = selector_string(sel);
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn containers_images(spec: &Value) -> (Value, Value) {
    let cs = arr(&spec["containers"]);
    let names: Vec<&str> = cs.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(&c["image"])).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    // Later entries win, as the printers build a map by type.
    arr(&obj["status"]["conditions"])
        .iter()
        .rev()
        .find(|c| c["type"] == ty)
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c["status"] == "True")
}

fn row_conditions(obj: &Value) -> Option<Value> {
    if obj["kind"] != "Pod" {
        return None;
    }
    match s(&obj["status"]["phase"]) {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    }
}

// ---- printers ----

/// `printPod` (v1.34: restartable init containers count as containers, the last restart's age
/// follows RESTARTS, a `Completed` container next to a failed one shows the failure).
fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut total = arr(&spec["containers"]).len() as i64;
    let mut ready = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;
    let phase = s(&status["phase"]);
    let mut reason = or(s(&status["reason"]), phase).to_string();
    if arr(&status["conditions"])
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let init_specs = arr(&spec["initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| c["name"] == name && c["restartPolicy"] == "Always")
    };
    total += init_specs
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .count() as i64;
    let later = |cur: Option<DateTime<Utc>>, t: Option<DateTime<Utc>>| match (cur, t) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut initializing = false;
    let init_statuses = arr(&status["initContainerStatuses"]);
    for (i, c) in init_statuses.iter().enumerate() {
        let st = &c["state"];
        let finished = time(&c["lastState"]["terminated"]["finishedAt"]);
        restarts += int(&c["restartCount"]);
        last_restart = later(last_restart, finished);
        let sidecar = restartable(s(&c["name"]));
        if sidecar {
            sidecar_restarts += int(&c["restartCount"]);
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let term = &st["terminated"];
        if term.is_object() && int(&term["exitCode"]) == 0 {
            continue;
        }
        if sidecar && c["started"].as_bool() == Some(true) {
            if c["ready"].as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        if term.is_object() {
            reason = if s(&term["reason"]).is_empty() {
                if int(&term["signal"]) != 0 {
                    format!("Init:Signal:{}", int(&term["signal"]))
                } else {
                    format!("Init:ExitCode:{}", int(&term["exitCode"]))
                }
            } else {
                format!("Init:{}", s(&term["reason"]))
            };
        } else if !s(&st["waiting"]["reason"]).is_empty()
            && s(&st["waiting"]["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", s(&st["waiting"]["reason"]));
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        let mut error_reason = String::new();
        for c in arr(&status["containerStatuses"]).iter().rev() {
            restarts += int(&c["restartCount"]);
            last_restart = later(
                last_restart,
                time(&c["lastState"]["terminated"]["finishedAt"]),
            );
            let st = &c["state"];
            let term = &st["terminated"];
            if !s(&st["waiting"]["reason"]).is_empty() {
                reason = s(&st["waiting"]["reason"]).to_string();
            } else if term.is_object() {
                reason = if !s(&term["reason"]).is_empty() {
                    s(&term["reason"]).to_string()
                } else if int(&term["signal"]) != 0 {
                    format!("Signal:{}", int(&term["signal"]))
                } else {
                    format!("ExitCode:{}", int(&term["exitCode"]))
                };
                if int(&term["exitCode"]) != 0 {
                    error_reason = reason.clone();
                }
            } else if c["ready"].as_bool() == Some(true) && st["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" {
            if has_running && condition_true(pod, "Ready") {
                reason = "Running".into();
            } else if !error_reason.is_empty() {
                reason = error_reason;
            } else if has_running {
                reason = "NotReady".into();
            }
        }
    }
    let deleting = pod["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    if deleting && s(&status["reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }
    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let ip = arr(&status["podIPs"])
        .first()
        .map(|p| s(&p["ip"]))
        .unwrap_or("");
    let gates = arr(&spec["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| {
                arr(&status["conditions"])
                    .iter()
                    .find(|c| c["type"] == g["conditionType"])
                    .is_some_and(|c| c["status"] == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        json!(name(pod)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        age(pod, now),
        json!(or(ip, "<none>")),
        json!(or(s(&spec["nodeName"]), "<none>")),
        json!(or(s(&status["nominatedNodeName"]), "<none>")),
        json!(readiness_gates),
    ]
}

/// `printNode`: Ready / NotReady (any other status of the Ready condition) / Unknown (no
/// Ready condition), then `SchedulingDisabled` when cordoned.
fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status = vec![match condition(node, "Ready") {
        Some(c) if c["status"] == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    for (k, v) in node["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && !s(v).is_empty() {
            roles.insert(s(v).to_string());
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    let info = &node["status"]["nodeInfo"];
    let address = |ty: &str| {
        arr(&node["status"]["addresses"])
            .iter()
            .find(|a| a["type"] == ty)
            .map(|a| s(&a["address"]).to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    vec![
        json!(name(node)),
        json!(status.join(",")),
        json!(or(&roles, "<none>")),
        age(node, now),
        json!(s(&info["kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or(s(&info["osImage"]), "<unknown>")),
        json!(or(s(&info["kernelVersion"]), "<unknown>")),
        json!(or(s(&info["containerRuntimeVersion"]), "<unknown>")),
    ]
}

fn namespace_cells(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(ns)),
        json!(s(&ns["status"]["phase"])),
        age(ns, now),
    ]
}

/// `getServiceExternalIP` (wide, as the server prints it).
fn service_external_ip(spec: &Value, status: &Value) -> String {
    let external: Vec<&str> = arr(&spec["externalIPs"]).iter().map(s).collect();
    match or(s(&spec["type"]), "ClusterIP") {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let lb: BTreeSet<&str> = arr(&status["loadBalancer"]["ingress"])
                .iter()
                .map(|i| or(s(&i["ip"]), s(&i["hostname"])))
                .filter(|x| !x.is_empty())
                .collect();
            let mut all: Vec<&str> = lb.into_iter().collect();
            if !external.is_empty() {
                all.extend(external);
                all.join(",")
            } else if !all.is_empty() {
                all.join(",")
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(&spec["externalName"]).to_string(),
        _ => "<unknown>".into(),
    }
}

/// `makePortString`: `port/proto` or `port:nodePort/proto`, comma-joined.
fn service_ports(spec: &Value) -> String {
    arr(&spec["ports"])
        .iter()
        .map(|p| {
            let proto = or(s(&p["protocol"]), "TCP");
            match int(&p["nodePort"]) {
                0 => format!("{}/{proto}", int(&p["port"])),
                np => format!("{}:{np}/{proto}", int(&p["port"])),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &svc["spec"];
    let cluster_ip = arr(&spec["clusterIPs"]).first().map(s).unwrap_or("");
    let ports = service_ports(spec);
    vec![
        json!(name(svc)),
        json!(s(&spec["type"])),
        json!(or(cluster_ip, "<none>")),
        json!(service_external_ip(spec, &svc["status"])),
        json!(or(&ports, "<none>")),
        age(svc, now),
        json!(format_labels(&spec["selector"])),
    ]
}

/// `formatEndpoints`: up to three `ip:port` (or bare IPs for port-less subsets), then
/// `+ N more...`.
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr(&ep["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let (mut list, mut more, mut count) = (Vec::new(), false, 0usize);
    for ss in subsets {
        let addrs = arr(&ss["addresses"]);
        let ports = arr(&ss["ports"]);
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(&a["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                let ip = s(&a["ip"]);
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                list.push(format!("{host}:{}", int(&p["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

fn endpoints_cells(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![json!(name(ep)), json!(format_endpoints(ep)), age(ep, now)]
}

/// `listWithMoreString`: `<unset>` for an empty list.
fn list_with_more(list: Vec<String>, more: bool, count: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - 3);
    }
    if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

fn endpoint_slice_cells(es: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (mut ports, mut more, mut count) = (Vec::new(), false, 0);
    for p in arr(&es["ports"]) {
        if ports.len() < 3 {
            let text = match p["port"].as_i64() {
                Some(n) => n.to_string(),
                None if p["name"].is_string() => s(&p["name"]).to_string(),
                None => "*".into(),
            };
            ports.push(text);
        } else if ports.len() == 3 {
            more = true;
        }
        count += 1;
    }
    let ports = list_with_more(ports, more, count);
    let (mut addrs, mut more, mut count) = (Vec::new(), false, 0);
    for e in arr(&es["endpoints"]) {
        for a in arr(&e["addresses"]) {
            if addrs.len() < 3 {
                addrs.push(s(a).to_string());
            } else if addrs.len() == 3 {
                more = true;
            }
            count += 1;
        }
    }
    vec![
        json!(name(es)),
        json!(s(&es["addressType"])),
        json!(ports),
        json!(list_with_more(addrs, more, count)),
        age(es, now),
    ]
}

fn deployment_cells(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, st) = (&d["spec"], &d["status"]);
    let (containers, images) = containers_images(&spec["template"]["spec"]);
    vec![
        json!(name(d)),
        json!(format!(
            "{}/{}",
            int(&st["readyReplicas"]),
            int(&spec["replicas"])
        )),
        json!(int(&st["updatedReplicas"])),
        json!(int(&st["availableReplicas"])),
        age(d, now),
        containers,
        images,
        json!(selector_string(&spec["selector"])),
    ]
}

fn replica_set_cells(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, st) = (&rs["spec"], &rs["status"]);
    let (containers, images) = containers_images(&spec["template"]["spec"]);
    vec![
        json!(name(rs)),
        json!(int(&spec["replicas"])),
        json!(int(&st["replicas"])),
        json!(int(&st["readyReplicas"])),
        age(rs, now),
        containers,
        images,
        json!(format_label_selector(&spec["selector"])),
    ]
}

fn daemon_set_cells(ds: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, st) = (&ds["spec"], &ds["status"]);
    let (containers, images) = containers_images(&spec["template"]["spec"]);
    vec![
        json!(name(ds)),
        json!(int(&st["desiredNumberScheduled"])),
        json!(int(&st["currentNumberScheduled"])),
        json!(int(&st["numberReady"])),
        json!(int(&st["updatedNumberScheduled"])),
        json!(int(&st["numberAvailable"])),
        json!(format_labels(&spec["template"]["spec"]["nodeSelector"])),
        age(ds, now),
        containers,
        images,
        json!(format_label_selector(&spec["selector"])),
    ]
}

fn stateful_set_cells(sts: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, st) = (&sts["spec"], &sts["status"]);
    let (containers, images) = containers_images(&spec["template"]["spec"]);
    vec![
        json!(name(sts)),
        json!(format!(
            "{}/{}",
            int(&st["readyReplicas"]),
            int(&spec["replicas"])
        )),
        age(sts, now),
        containers,
        images,
    ]
}

fn lease_cells(l: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(l)),
        json!(s(&l["spec"]["holderIdentity"])),
        age(l, now),
    ]
}

fn config_map_cells(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(cm)),
        json!(len_of(&cm["data"]) + len_of(&cm["binaryData"])),
        age(cm, now),
    ]
}

fn secret_cells(sec: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(sec)),
        json!(s(&sec["type"])),
        json!(len_of(&sec["data"])),
        age(sec, now),
    ]
}

fn service_account_cells(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![json!(name(sa)), json!(len_of(&sa["secrets"])), age(sa, now)]
}

/// `printEvent`; an `events.k8s.io/v1` Event is read through its field names
/// (`regarding`, `note`, `deprecated*`), as the server converts it to the internal type.
fn event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let v1 = ev["apiVersion"] == "events.k8s.io/v1";
    let field = |core: &str, new: &str| if v1 { &ev[new] } else { &ev[core] };
    let first_ts = field("firstTimestamp", "deprecatedFirstTimestamp");
    let first = if time(first_ts).is_some() {
        since(first_ts, now)
    } else {
        since(&ev["eventTime"], now)
    };
    let last_ts = field("lastTimestamp", "deprecatedLastTimestamp");
    let mut last = if time(last_ts).is_some() {
        since(last_ts, now)
    } else {
        first.clone()
    };
    let mut count = int(field("count", "deprecatedCount"));
    if ev["series"].is_object() {
        last = since(&ev["series"]["lastObservedTime"], now);
        count = int(&ev["series"]["count"]);
    } else if count == 0 {
        count = 1;
    }
    let obj = field("involvedObject", "regarding");
    let kind = s(&obj["kind"]).to_ascii_lowercase();
    let target = if s(&obj["name"]).is_empty() {
        kind
    } else {
        format!("{kind}/{}", s(&obj["name"]))
    };
    let source = field("source", "deprecatedSource");
    let component = or(s(&source["component"]), s(&ev["reportingController"]));
    let instance = or(s(&source["host"]), s(&ev["reportingInstance"]));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(&ev["type"])),
        json!(s(&ev["reason"])),
        json!(target),
        json!(s(&obj["fieldPath"])),
        json!(source),
        json!(s(field("message", "note")).trim()),
        json!(first),
        json!(count),
        json!(name(ev)),
    ]
}

// ---- custom resource columns ----

/// A cell of a custom resource column (`cellForJSONValue`; strings as the JSONPath printer
/// writes them).
fn custom_cell(ty: &str, v: Option<&Value>, now: DateTime<Utc>) -> Value {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    match (ty, v) {
        ("string", v) => json!(go_text(v)),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(t)) => match time(&json!(t)) {
            Some(t) => json!(human_duration(now - t)),
            None => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// A value as Go's `fmt` prints an unstructured value (`[a b]`, `map[k:v]`).
fn go_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// The first result of a simple JSONPath (`.a.b`, `.a[0]`, `.a[*].b`, `.a['b.c']`,
/// `.a[?(@.k=="v")].b`), the subset custom resource columns allow.
fn jsonpath_first<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current: Vec<&Value> = vec![root];
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut rest = p.strip_prefix('$').unwrap_or(p);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            if key.is_empty() {
                continue;
            }
            current = current.into_iter().filter_map(|v| v.get(key)).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            // A filter may contain `]` only inside quotes; the paths CRDs use do not.
            let inner = &r[..end];
            rest = &r[end + 1..];
            current = match inner {
                "*" => current
                    .into_iter()
                    .flat_map(|v| match v {
                        Value::Array(a) => a.iter().collect::<Vec<_>>(),
                        Value::Object(m) => m.values().collect(),
                        _ => Vec::new(),
                    })
                    .collect(),
                f if f.starts_with("?(") => {
                    let cond = f.trim_start_matches("?(").trim_end_matches(')');
                    let (lhs, rhs) = cond.split_once("==")?;
                    let field = lhs.trim().strip_prefix("@.")?;
                    let want = rhs.trim().trim_matches(['"', '\'']);
                    current
                        .into_iter()
                        .flat_map(|v| {
                            v.as_array()
                                .map(|a| a.iter().collect::<Vec<_>>())
                                .unwrap_or_default()
                        })
                        .filter(|item| {
                            item.get(field).is_some_and(|x| match x {
                                Value::String(s) => s == want,
                                other => {
                                    serde_json::from_str::<Value>(want).ok().as_ref() == Some(other)
                                }
                            })
                        })
                        .collect()
                }
                q if q.starts_with(['\'', '"']) => {
                    let key = q.trim_matches(['"', '\'']);
                    current.into_iter().filter_map(|v| v.get(key)).collect()
                }
                n => {
                    let i: usize = n.trim().parse().ok()?;
                    current.into_iter().filter_map(|v| v.get(i)).collect()
                }
            };
        } else {
            return None;
        }
    }
    current.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let d = chrono::Duration::seconds;
        for (secs, want) in [
            (-3, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ] {
            assert_eq!(human_duration(d(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn accept_negotiation_picks_the_first_supported_clause() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            Format::negotiate(Some(kubectl), None).unwrap(),
            Format::Table {
                group_version: "meta.k8s.io/v1",
                include: Include::Metadata
            }
        );
        assert_eq!(
            Format::negotiate(
                Some("application/json;as=Table;v=v2;g=meta.k8s.io, application/json"),
                None
            )
            .unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::negotiate(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                None
            )
            .unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::negotiate(
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                None
            )
            .unwrap(),
            Format::Metadata {
                group_version: "meta.k8s.io/v1"
            }
        );
        assert_eq!(Format::negotiate(None, None).unwrap(), Format::Json);
        let e = Format::negotiate(Some(kubectl), Some("Everything")).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("includeObject"), "{}", e.message);
    }

    fn node(ready: Option<&str>, unschedulable: bool, labels: Value) -> Value {
        let conds = match ready {
            Some(st) => {
                json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": st}])
            }
            None => json!([]),
        };
        json!({"kind": "Node", "metadata": {"name": "n1", "creationTimestamp": "2025-01-01T00:00:00Z", "labels": labels},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conds, "addresses": [{"type": "InternalIP", "address": "10.5.0.2"}],
                "nodeInfo": {"kubeletVersion": "v1.34.2", "osImage": "Talos (v1.11.5)", "kernelVersion": "6.12.57-talos",
                    "containerRuntimeVersion": "containerd://2.1.5"}}})
    }

    #[test]
    fn node_status_roles_and_wide_cells() {
        let now = at("2025-01-01T00:05:00Z");
        let cp =
            json!({"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "n1"});
        let cells = node_cells(&node(Some("True"), false, cp), now);
        assert_eq!(
            cells,
            json!([
                "n1",
                "Ready",
                "control-plane",
                "5m",
                "v1.34.2",
                "10.5.0.2",
                "<none>",
                "Talos (v1.11.5)",
                "6.12.57-talos",
                "containerd://2.1.5"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        for (ready, cordoned, want) in [
            (Some("False"), false, "NotReady"),
            (Some("Unknown"), false, "NotReady"),
            (None, false, "Unknown"),
            (Some("True"), true, "Ready,SchedulingDisabled"),
        ] {
            assert_eq!(node_cells(&node(ready, cordoned, json!({})), now)[1], want);
        }
        let roles = json!({"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "infra", "node-role.kubernetes.io/": "x"});
        assert_eq!(
            node_cells(&node(Some("True"), false, roles), now)[2],
            "infra,worker"
        );
        assert_eq!(
            node_cells(&node(Some("True"), false, json!({})), now)[2],
            "<none>"
        );
    }

    fn pod(statuses: Value, extra_status: Value) -> Value {
        let mut p = json!({"kind": "Pod", "metadata": {"name": "p", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"nodeName": "w1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.244.1.5"}], "containerStatuses": statuses,
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]}});
        for (k, v) in extra_status.as_object().unwrap() {
            p["status"][k] = v.clone();
        }
        p
    }

    #[test]
    fn pod_status_restarts_and_wide_cells() {
        let now = at("2025-01-01T00:10:00Z");
        let running =
            json!({"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}});
        let cells = pod_cells(&pod(json!([running, running]), json!({})), now);
        assert_eq!(
            cells,
            json!([
                "p",
                "2/2",
                "Running",
                "0",
                "10m",
                "10.244.1.5",
                "w1",
                "<none>",
                "<none>"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let crash = json!({"name": "b", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-01T00:09:55Z"}}});
        let cells = pod_cells(&pod(json!([running, crash]), json!({})), now);
        assert_eq!(
            (&cells[1], &cells[2], &cells[3]),
            (
                &json!("1/2"),
                &json!("CrashLoopBackOff"),
                &json!("5 (5s ago)")
            )
        );
        let done = json!({"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let failed = json!({"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 2, "reason": "Error"}}});
        assert_eq!(
            pod_cells(&pod(json!([failed, done]), json!({"phase": "Failed"})), now)[2],
            "Error"
        );
        assert_eq!(
            pod_cells(
                &pod(json!([done, done]), json!({"phase": "Succeeded"})),
                now
            )[2],
            "Completed"
        );
        let mut term = pod(json!([running, running]), json!({}));
        term["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:09:00Z");
        assert_eq!(pod_cells(&term, now)[2], "Terminating");
        term["status"]["reason"] = json!("NodeLost");
        assert_eq!(pod_cells(&term, now)[2], "Unknown");
        let mut init = pod(
            json!([]),
            json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        );
        init["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
        init["status"]["conditions"] = json!([]);
        assert_eq!(pod_cells(&init, now)[2], "Init:1/2");
        let pending = pod(
            json!([{"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]),
            json!({"phase": "Pending", "podIPs": []}),
        );
        let cells = pod_cells(&pending, now);
        assert_eq!(
            (&cells[1], &cells[2], &cells[5]),
            (&json!("0/2"), &json!("ContainerCreating"), &json!("<none>"))
        );
    }

    #[test]
    fn endpoints_and_services_print_like_kubectl() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
            "ports": [{"port": 8080}]}]});
        assert_eq!(
            format_endpoints(&ep),
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..."
        );
        assert_eq!(format_endpoints(&json!({})), "<none>");
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"b": "2", "a": "1"}}});
        let cells = service_cells(&svc, at("2025-01-01T00:00:00Z"));
        assert_eq!(cells[2], "10.96.0.10");
        assert_eq!(cells[3], "<none>");
        assert_eq!(cells[4], "80:30080/TCP,53/UDP");
        assert_eq!(cells[6], "a=1,b=2");
        let sel = json!({"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]});
        assert_eq!(selector_string(&sel), "app=x,tier in (a,b)");
        assert_eq!(format_label_selector(&json!({})), "<none>");
    }

    #[test]
    fn custom_columns_follow_json_paths() {
        let obj = json!({"metadata": {"name": "gw", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"gatewayClassName": "cilium", "listeners": [{"port": 80}]},
            "status": {"conditions": [{"type": "Accepted", "status": "False"}, {"type": "Programmed", "status": "True"}]}});
        assert_eq!(
            jsonpath_first(&obj, ".spec.gatewayClassName"),
            Some(&json!("cilium"))
        );
        assert_eq!(
            jsonpath_first(&obj, ".status.conditions[?(@.type==\"Programmed\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            jsonpath_first(&obj, ".spec.listeners[0].port"),
            Some(&json!(80))
        );
        assert_eq!(
            jsonpath_first(&obj, ".spec.listeners[*].port"),
            Some(&json!(80))
        );
        assert_eq!(jsonpath_first(&obj, ".spec.missing"), None);
        let now = at("2025-01-01T01:00:00Z");
        assert_eq!(
            custom_cell(
                "date",
                jsonpath_first(&obj, ".metadata.creationTimestamp"),
                now
            ),
            json!("60m")
        );
        assert_eq!(custom_cell("integer", Some(&json!(3)), now), json!(3));
        assert_eq!(
            custom_cell("string", Some(&json!(["a", "b"])), now),
            json!("[a b]")
        );
        assert_eq!(custom_cell("string", None, now), Value::Null);
    }

    #[test]
    fn tables_carry_metadata_rows_and_optional_headers() {
        let store = Store::new("t".into());
        let rt = store.resource_type(&Gvr::new("", "v1", "nodes")).unwrap();
        let printer = Printer::for_type(&store, &rt);
        let n = node(Some("True"), false, json!({}));
        let t = printer.table(
            &[&n],
            json!({"resourceVersion": "7"}),
            Include::Metadata,
            "meta.k8s.io/v1",
            true,
            Utc::now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0})
        );
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "n1");
        let t = printer.table(
            &[&n],
            json!({}),
            Include::None,
            "meta.k8s.io/v1",
            false,
            Utc::now(),
        );
        assert!(t["columnDefinitions"].is_null() && t["rows"][0]["object"].is_null());
        let cm = store
            .resource_type(&Gvr::new(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
            ))
            .unwrap();
        let t = Printer::for_type(&store, &cm).table(
            &[&n],
            json!({}),
            Include::Object,
            "meta.k8s.io/v1",
            true,
            Utc::now(),
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["rows"][0]["cells"], json!(["n1", "2025-01-01T00:00:00Z"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "Node");
    }
}
