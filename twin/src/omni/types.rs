//! Resource definitions: full types, default namespaces, display types, aliases, print
//! columns (omni.md §3.3, §5.1) and spec field lists in proto field order (§5.3), so that
//! every spec renders with all of its fields, in order, with zero values where unset.

use super::value::Yv;

/// The namespaces of omni.md §5.1 and §11.6.
pub const NS_DEFAULT: &str = "default";
pub const NS_EPHEMERAL: &str = "ephemeral";
pub const NS_INFRA_PROVIDER: &str = "infra-provider";
pub const NS_INFRA_PROVIDER_EPHEMERAL: &str = "infra-provider-ephemeral";

/// A spec field type.
#[derive(Debug, Clone, Copy)]
pub enum F {
    Str,
    Bool,
    /// Integers and enums (enums are integers in every output format, §5.2).
    Int,
    /// `bytes`: rendered `[]` when empty.
    Bytes,
    /// `map<string, string>`: `{}` when empty, keys sorted.
    Map,
    /// A message: `null` when unset.
    Msg(&'static [(&'static str, F)]),
    /// A repeated field: `[]` when empty.
    List(&'static F),
}

/// One resource definition.
#[derive(Debug)]
pub struct Def {
    /// `MachineRequests.omni.sidero.dev`.
    pub full: &'static str,
    /// `MachineRequest` (the `TYPE` column).
    pub display: &'static str,
    pub namespace: &'static str,
    /// Print columns: upper-case name, JSONPath over the spec.
    pub columns: &'static [(&'static str, &'static str)],
    /// Spec fields in proto order; `None` renders the spec as stored.
    pub spec: Option<&'static [(&'static str, F)]>,
}

impl Def {
    /// `MachineRequests` (the plural, first segment of the full type).
    pub fn plural(&self) -> &'static str {
        self.full.split('.').next().unwrap_or(self.full)
    }

    /// Names `omnictl` resolves to this type, lower-cased (omni.md §5.1): the full type, the
    /// plural, `<plural>.omni`, `<plural>.omni.sidero`, the singular, and the acronym of the
    /// capitals (plus acronym+`s`).
    pub fn aliases(&self) -> Vec<String> {
        let plural = self.plural().to_lowercase();
        let acronym: String = self
            .display
            .chars()
            .filter(char::is_ascii_uppercase)
            .collect::<String>()
            .to_lowercase();
        let mut v = vec![
            self.full.to_lowercase(),
            plural.clone(),
            format!("{plural}.omni"),
            format!("{plural}.omni.sidero"),
            self.display.to_lowercase(),
        ];
        // Single-capital types (Machine, Link) get no acronym.
        if acronym.len() > 1 {
            v.push(acronym.clone());
            v.push(format!("{acronym}s"));
        }
        v
    }
}

const S: F = F::Str;
const B: F = F::Bool;
const I: F = F::Int;
const LS: F = F::List(&F::Str);

const MACHINES: F = F::Msg(&[
    ("total", I),
    ("healthy", I),
    ("connected", I),
    ("requested", I),
]);
const TIMESTAMP: F = F::Msg(&[("seconds", I), ("nanos", I)]);
const META_VALUES: F = F::List(&F::Msg(&[("key", I), ("value", S)]));
const ALLOCATION: F = F::Msg(&[("name", S), ("machinecount", I), ("allocationtype", I)]);
const STRATEGY_CONFIG: F = F::Msg(&[("rolling", F::Msg(&[("maxparallelism", I)]))]);

const MACHINE_STATUS: &[(&str, F)] = &[
    ("talosversion", S),
    (
        "hardware",
        F::Msg(&[
            (
                "processors",
                F::List(&F::Msg(&[
                    ("corecount", I),
                    ("threadcount", I),
                    ("frequency", I),
                    ("description", S),
                    ("manufacturer", S),
                ])),
            ),
            (
                "memorymodules",
                F::List(&F::Msg(&[("sizemb", I), ("description", S)])),
            ),
            (
                "blockdevices",
                F::List(&F::Msg(&[
                    ("size", I),
                    ("model", S),
                    ("linuxname", S),
                    ("name", S),
                    ("serial", S),
                    ("uuid", S),
                    ("wwid", S),
                    ("type", S),
                    ("buspath", S),
                    ("systemdisk", B),
                    ("readonly", B),
                    ("transport", S),
                    ("devpath", S),
                    ("iosize", I),
                    ("sectorsize", I),
                    ("modalias", S),
                    ("subsystem", S),
                    ("rotational", B),
                    ("cdrom", B),
                    ("prettysize", S),
                    ("secondarydisks", LS),
                    ("symlinks", LS),
                    ("firmwareversion", S),
                ])),
            ),
            ("arch", S),
        ]),
    ),
    (
        "network",
        F::Msg(&[
            ("hostname", S),
            ("domainname", S),
            ("addresses", LS),
            ("defaultgateways", LS),
            (
                "networklinks",
                F::List(&F::Msg(&[
                    ("linuxname", S),
                    ("hardwareaddress", S),
                    ("speedmbps", I),
                    ("linkup", B),
                    ("description", S),
                ])),
            ),
        ]),
    ),
    ("lasterror", S),
    ("managementaddress", S),
    ("connected", B),
    ("maintenance", B),
    ("cluster", S),
    ("role", I),
    (
        "platformmetadata",
        F::Msg(&[
            ("platform", S),
            ("hostname", S),
            ("region", S),
            ("zone", S),
            ("instancetype", S),
            ("instanceid", S),
            ("providerid", S),
            ("spot", B),
            ("tags", F::Map),
        ]),
    ),
    ("imagelabels", F::Map),
    (
        "schematic",
        F::Msg(&[
            ("invalid", B),
            ("extensions", LS),
            ("initialschematic", S),
            ("kernelargs", LS),
            ("fullid", S),
            ("inagentmode", B),
            ("raw", S),
            ("initialstate", F::Msg(&[("extensions", LS)])),
        ]),
    ),
    ("initialtalosversion", S),
    (
        "diagnostics",
        F::List(&F::Msg(&[("id", S), ("message", S), ("details", LS)])),
    ),
    ("powerstate", I),
    (
        "securitystate",
        F::Msg(&[("secureboot", B), ("bootedwithuki", B), ("fipsstate", I)]),
    ),
    ("kernelcmdline", S),
    ("talosversionname", S),
];

const UPGRADE_STATUS: &[(&str, F)] = &[
    ("phase", I),
    ("error", S),
    ("step", S),
    ("status", S),
    ("lastupgradeversion", S),
    ("currentupgradeversion", S),
    ("upgradeversions", LS),
];

/// Every registered resource definition, in the order `omnictl get rd` would list them
/// (alphabetical by full type, which is also the order ambiguity errors name them in).
pub static DEFS: &[Def] = &[
    Def {
        full: "ClusterKubernetesNodes.omni.sidero.dev",
        display: "ClusterKubernetesNode",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[("nodes", LS)]),
    },
    Def {
        full: "ClusterMachineIdentities.omni.sidero.dev",
        display: "ClusterMachineIdentity",
        namespace: NS_DEFAULT,
        columns: &[
            ("NODE IDENTITY", ".nodeidentity"),
            ("ETCD MEMBER ID", ".etcdmemberid"),
            ("NODE NAME", ".nodename"),
            ("NODE IPS", ".nodeips"),
            ("DISCOVERY SERVICE ENDPOINT", ".discoveryserviceendpoint"),
        ],
        spec: Some(&[
            ("nodeidentity", S),
            ("etcdmemberid", I),
            ("nodename", S),
            ("nodeips", LS),
            ("discoveryserviceendpoint", S),
            ("discoveryserviceendpoints", LS),
        ]),
    },
    Def {
        full: "ClusterMachineRequestStatuses.omni.sidero.dev",
        display: "ClusterMachineRequestStatus",
        namespace: NS_DEFAULT,
        columns: &[("STAGE", ".stage")],
        spec: Some(&[
            ("status", S),
            ("machineuuid", S),
            ("providerid", S),
            ("stage", I),
            ("error", S),
        ]),
    },
    Def {
        full: "ClusterMachineStatuses.omni.sidero.dev",
        display: "ClusterMachineStatus",
        namespace: NS_DEFAULT,
        columns: &[("READY", ".ready"), ("STAGE", ".stage")],
        spec: Some(&[
            ("ready", B),
            ("stage", I),
            ("configuptodate", B),
            ("lastconfigerror", S),
            ("managementaddress", S),
            ("configapplystatus", I),
            ("isremoved", B),
            (
                "provisionstatus",
                F::Msg(&[("providerid", S), ("requestid", S)]),
            ),
        ]),
    },
    Def {
        full: "ClusterMachines.omni.sidero.dev",
        display: "ClusterMachine",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[("kubernetesversion", S)]),
    },
    Def {
        full: "ClusterSecrets.omni.sidero.dev",
        display: "ClusterSecrets",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[("data", F::Bytes), ("imported", B)]),
    },
    Def {
        full: "ClusterStatuses.omni.sidero.dev",
        display: "ClusterStatus",
        namespace: NS_DEFAULT,
        columns: &[
            ("AVAILABLE", ".available"),
            ("PHASE", ".phase"),
            ("MACHINES", ".machines.total"),
            ("HEALTHY", ".machines.healthy"),
        ],
        spec: Some(&[
            ("available", B),
            ("machines", MACHINES),
            ("phase", I),
            ("ready", B),
            ("kubernetesapiready", B),
            ("controlplaneready", B),
            ("hasconnectedcontrolplanes", B),
            ("useembeddeddiscoveryservice", B),
            ("talosversion", S),
            ("kubernetesversion", S),
            ("disablepublicdiscoveryservice", B),
            ("initialtalosversion", S),
        ]),
    },
    Def {
        full: "Clusters.omni.sidero.dev",
        display: "Cluster",
        namespace: NS_DEFAULT,
        columns: &[
            ("TALOS VERSION", ".talosversion"),
            ("KUBERNETES VERSION", ".kubernetesversion"),
        ],
        spec: Some(&[
            ("kubernetesversion", S),
            ("talosversion", S),
            (
                "features",
                F::Msg(&[
                    ("enableworkloadproxy", B),
                    ("diskencryption", B),
                    ("useembeddeddiscoveryservice", B),
                    ("enablenodeauditskip", B),
                    ("disablepublicdiscoveryservice", B),
                ]),
            ),
            (
                "backupconfiguration",
                F::Msg(&[("interval", TIMESTAMP), ("enabled", B)]),
            ),
        ]),
    },
    Def {
        full: "ConfigPatches.omni.sidero.dev",
        display: "ConfigPatch",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[("data", S), ("compresseddata", F::Bytes)]),
    },
    Def {
        full: "ControlPlaneStatuses.omni.sidero.dev",
        display: "ControlPlaneStatus",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[(
            "conditions",
            F::List(&F::Msg(&[
                ("type", I),
                ("reason", S),
                ("status", I),
                ("severity", I),
            ])),
        )]),
    },
    Def {
        full: "ExtensionsConfigurations.omni.sidero.dev",
        display: "ExtensionsConfiguration",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[("extensions", LS)]),
    },
    Def {
        full: "InfraMachineStatuses.omni.sidero.dev",
        display: "InfraMachineStatus",
        namespace: NS_INFRA_PROVIDER,
        columns: &[],
        spec: None,
    },
    Def {
        full: "InfraMachines.omni.sidero.dev",
        display: "InfraMachine",
        namespace: NS_INFRA_PROVIDER,
        columns: &[],
        spec: None,
    },
    Def {
        full: "InfraProviderCombinedStatuses.omni.sidero.dev",
        display: "InfraProviderCombinedStatus",
        namespace: NS_EPHEMERAL,
        columns: &[
            ("NAME", ".name"),
            ("DESCRIPTION", ".description"),
            ("VERSION", ".version"),
            ("CONNECTED", ".health.connected"),
        ],
        spec: Some(&[
            ("name", S),
            ("description", S),
            ("icon", S),
            (
                "health",
                F::Msg(&[("connected", B), ("error", S), ("initialized", B)]),
            ),
            ("version", S),
        ]),
    },
    Def {
        full: "InfraProviderHealthStatuses.omni.sidero.dev",
        display: "InfraProviderHealthStatus",
        namespace: NS_INFRA_PROVIDER_EPHEMERAL,
        columns: &[
            ("LAST HEARTBEAT TIMESTAMP", ".lastheartbeattimestamp"),
            ("ERROR", ".error"),
        ],
        spec: Some(&[("lastheartbeattimestamp", TIMESTAMP), ("error", S)]),
    },
    Def {
        full: "InfraProviderStatuses.omni.sidero.dev",
        display: "InfraProviderStatus",
        namespace: NS_INFRA_PROVIDER,
        columns: &[
            ("NAME", ".name"),
            ("DESCRIPTION", ".description"),
            ("VERSION", ".version"),
        ],
        spec: Some(&[
            ("schema", S),
            ("name", S),
            ("description", S),
            ("icon", S),
            ("version", S),
        ]),
    },
    Def {
        full: "InfraProviders.omni.sidero.dev",
        display: "InfraProvider",
        namespace: NS_INFRA_PROVIDER,
        columns: &[],
        spec: Some(&[]),
    },
    Def {
        full: "KubernetesUpgradeStatuses.omni.sidero.dev",
        display: "KubernetesUpgradeStatus",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(UPGRADE_STATUS),
    },
    Def {
        full: "Links.omni.sidero.dev",
        display: "Link",
        namespace: NS_DEFAULT,
        columns: &[
            ("CONNECTED", ".connected"),
            ("LASTENDPOINT", ".lastendpoint"),
        ],
        spec: Some(&[
            ("nodesubnet", S),
            ("nodepublickey", S),
            ("lastendpoint", S),
            ("connected", B),
            ("virtualaddrport", S),
            ("remoteaddr", S),
            ("nodeuniquetoken", S),
        ]),
    },
    Def {
        full: "LinkStatuses.omni.sidero.dev",
        display: "LinkStatus",
        namespace: NS_EPHEMERAL,
        columns: &[],
        spec: Some(&[
            ("nodesubnet", S),
            ("nodepublickey", S),
            ("virtualaddrport", S),
            ("linkid", S),
        ]),
    },
    Def {
        full: "LoadBalancerStatuses.omni.sidero.dev",
        display: "LoadBalancerStatus",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[("healthy", B), ("stopped", B)]),
    },
    Def {
        full: "MachineClasses.omni.sidero.dev",
        display: "MachineClass",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[
            ("matchlabels", LS),
            (
                "autoprovision",
                F::Msg(&[
                    ("providerid", S),
                    ("kernelargs", LS),
                    ("metavalues", META_VALUES),
                    ("providerdata", S),
                    ("grpctunnel", I),
                ]),
            ),
        ]),
    },
    Def {
        full: "MachineRequestSetStatuses.omni.sidero.dev",
        display: "MachineRequestSetStatus",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[]),
    },
    Def {
        full: "MachineRequestSets.omni.sidero.dev",
        display: "MachineRequestSet",
        namespace: NS_DEFAULT,
        columns: &[
            ("PROVIDERID", ".providerid"),
            ("MACHINECOUNT", ".machinecount"),
        ],
        spec: Some(&[
            ("providerid", S),
            ("machinecount", I),
            ("talosversion", S),
            ("extensions", LS),
            ("kernelargs", LS),
            ("metavalues", META_VALUES),
            ("providerdata", S),
            ("grpctunnel", I),
        ]),
    },
    Def {
        full: "MachineRequestStatuses.omni.sidero.dev",
        display: "MachineRequestStatus",
        namespace: NS_INFRA_PROVIDER,
        columns: &[],
        spec: Some(&[("id", S), ("stage", I), ("error", S), ("status", S)]),
    },
    Def {
        full: "MachineRequests.omni.sidero.dev",
        display: "MachineRequest",
        namespace: NS_INFRA_PROVIDER,
        columns: &[("TALOS VERSION", ".talosversion")],
        spec: Some(&[
            ("talosversion", S),
            ("overlay", F::Msg(&[("name", S), ("image", S)])),
            ("extensions", LS),
            ("kernelargs", LS),
            ("metavalues", META_VALUES),
            ("providerdata", S),
            ("grpctunnel", I),
        ]),
    },
    Def {
        full: "MachineSetNodes.omni.sidero.dev",
        display: "MachineSetNode",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[]),
    },
    Def {
        full: "MachineSetStatuses.omni.sidero.dev",
        display: "MachineSetStatus",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[
            ("phase", I),
            ("ready", B),
            ("error", S),
            ("machines", MACHINES),
            ("confighash", S),
            ("machineallocation", ALLOCATION),
            ("lockedupdates", I),
        ]),
    },
    Def {
        full: "MachineSets.omni.sidero.dev",
        display: "MachineSet",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(&[
            ("updatestrategy", I),
            ("machineclass", ALLOCATION),
            (
                "bootstrapspec",
                F::Msg(&[("clusteruuid", S), ("snapshot", S)]),
            ),
            ("deletestrategy", I),
            ("updatestrategyconfig", STRATEGY_CONFIG),
            ("deletestrategyconfig", STRATEGY_CONFIG),
            ("machineallocation", ALLOCATION),
        ]),
    },
    Def {
        full: "MachineStatuses.omni.sidero.dev",
        display: "MachineStatus",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(MACHINE_STATUS),
    },
    Def {
        full: "Machines.omni.sidero.dev",
        display: "Machine",
        namespace: NS_DEFAULT,
        columns: &[
            ("ADDRESS", ".managementaddress"),
            ("CONNECTED", ".connected"),
        ],
        spec: Some(&[
            ("managementaddress", S),
            ("connected", B),
            ("usegrpctunnel", B),
        ]),
    },
    Def {
        full: "SysVersions.system.sidero.dev",
        display: "SysVersion",
        namespace: NS_EPHEMERAL,
        columns: &[],
        spec: Some(&[
            ("backendversion", S),
            ("instancename", S),
            ("backendapiversion", I),
        ]),
    },
    Def {
        full: "TalosUpgradeStatuses.omni.sidero.dev",
        display: "TalosUpgradeStatus",
        namespace: NS_DEFAULT,
        columns: &[],
        spec: Some(UPGRADE_STATUS),
    },
];

/// Full type names used by the twin itself.
pub mod t {
    pub const CLUSTER: &str = "Clusters.omni.sidero.dev";
    pub const CLUSTER_STATUS: &str = "ClusterStatuses.omni.sidero.dev";
    pub const CLUSTER_MACHINE_STATUS: &str = "ClusterMachineStatuses.omni.sidero.dev";
    pub const CONFIG_PATCH: &str = "ConfigPatches.omni.sidero.dev";
    pub const CONTROL_PLANE_STATUS: &str = "ControlPlaneStatuses.omni.sidero.dev";
    pub const EXTENSIONS_CONFIGURATION: &str = "ExtensionsConfigurations.omni.sidero.dev";
    pub const INFRA_PROVIDER: &str = "InfraProviders.omni.sidero.dev";
    pub const INFRA_PROVIDER_STATUS: &str = "InfraProviderStatuses.omni.sidero.dev";
    pub const INFRA_PROVIDER_HEALTH: &str = "InfraProviderHealthStatuses.omni.sidero.dev";
    pub const INFRA_PROVIDER_COMBINED: &str = "InfraProviderCombinedStatuses.omni.sidero.dev";
    pub const KUBERNETES_UPGRADE_STATUS: &str = "KubernetesUpgradeStatuses.omni.sidero.dev";
    pub const LOAD_BALANCER_STATUS: &str = "LoadBalancerStatuses.omni.sidero.dev";
    pub const MACHINE_CLASS: &str = "MachineClasses.omni.sidero.dev";
    pub const MACHINE_REQUEST: &str = "MachineRequests.omni.sidero.dev";
    pub const MACHINE_REQUEST_SET: &str = "MachineRequestSets.omni.sidero.dev";
    pub const MACHINE_REQUEST_SET_STATUS: &str = "MachineRequestSetStatuses.omni.sidero.dev";
    pub const MACHINE_SET: &str = "MachineSets.omni.sidero.dev";
    pub const MACHINE_SET_NODE: &str = "MachineSetNodes.omni.sidero.dev";
    pub const MACHINE_SET_STATUS: &str = "MachineSetStatuses.omni.sidero.dev";
    pub const SYS_VERSION: &str = "SysVersions.system.sidero.dev";
    pub const TALOS_UPGRADE_STATUS: &str = "TalosUpgradeStatuses.omni.sidero.dev";
}

/// The definition of a full type.
pub fn def(full: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.full == full)
}

/// Why a type name did not resolve (omni.md §4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("resource {0:?} is not registered")]
    NotRegistered(String),
    #[error("resource type {0:?} is ambiguous: [{1}]")]
    Ambiguous(String, String),
}

/// Resolve what a user typed (`machinerequests`, `mrs`, `MachineRequests.omni.sidero.dev`).
pub fn resolve(name: &str) -> Result<&'static Def, ResolveError> {
    let lower = name.to_lowercase();
    let matches: Vec<&'static Def> = DEFS
        .iter()
        .filter(|d| d.aliases().contains(&lower))
        .collect();
    match matches.as_slice() {
        [] => Err(ResolveError::NotRegistered(name.to_string())),
        [one] => Ok(one),
        many => {
            let mut names: Vec<String> = many.iter().map(|d| d.full.to_lowercase()).collect();
            names.sort();
            Err(ResolveError::Ambiguous(name.to_string(), names.join(" ")))
        }
    }
}

/// The full type for a name the twin's own API is given: a full type as is, else an alias.
pub fn full_type(name: &str) -> String {
    if def(name).is_some() || name.contains('.') {
        name.to_string()
    } else {
        resolve(name)
            .map(|d| d.full.to_string())
            .unwrap_or_else(|_| name.to_string())
    }
}

/// Render a spec with every field of its definition, in proto order (§3.1: "every field is
/// always present"). Keys the definition does not know are kept, after the known ones.
pub fn normalize_spec(full: &str, spec: &serde_json::Value) -> Yv {
    match def(full).and_then(|d| d.spec) {
        Some(fields) => msg(fields, spec),
        None => sorted(spec),
    }
}

fn msg(fields: &[(&str, F)], v: &serde_json::Value) -> Yv {
    let obj = v.as_object();
    let mut out: Vec<(String, Yv)> = fields
        .iter()
        .map(|(name, f)| {
            let given = obj.and_then(|o| o.get(*name));
            ((*name).to_string(), field(f, given))
        })
        .collect();
    if let Some(o) = obj {
        let mut extra: Vec<(&String, &serde_json::Value)> = o
            .iter()
            .filter(|(k, _)| !fields.iter().any(|(n, _)| n == k))
            .collect();
        extra.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in extra {
            out.push((k.clone(), sorted(v)));
        }
    }
    Yv::Map(out)
}

fn field(f: &F, given: Option<&serde_json::Value>) -> Yv {
    let given = given.filter(|g| !g.is_null());
    match (f, given) {
        (F::Str, None) => Yv::Str(String::new()),
        (F::Bool, None) => Yv::Bool(false),
        (F::Int, None) => Yv::Int(0),
        (F::Bytes | F::List(_), None) => Yv::Seq(Vec::new()),
        (F::Map, None) => Yv::Map(Vec::new()),
        (F::Msg(_), None) => Yv::Null,
        (F::Msg(fields), Some(v)) if v.is_object() => msg(fields, v),
        (F::List(item), Some(serde_json::Value::Array(items))) => {
            Yv::Seq(items.iter().map(|i| field(item, Some(i))).collect())
        }
        (F::Map, Some(v)) => sorted(v),
        (_, Some(v)) => Yv::from_json(v),
    }
}

/// JSON → value with mapping keys sorted (Go marshals maps with sorted keys).
pub fn sorted(v: &serde_json::Value) -> Yv {
    match v {
        serde_json::Value::Object(o) => {
            let mut entries: Vec<(String, Yv)> =
                o.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Yv::Map(entries)
        }
        serde_json::Value::Array(a) => Yv::Seq(a.iter().map(sorted).collect()),
        other => Yv::from_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_like_omnictl() {
        assert_eq!(resolve("machinerequests").unwrap().full, t::MACHINE_REQUEST);
        assert_eq!(
            resolve("machinerequeststatus").unwrap().namespace,
            NS_INFRA_PROVIDER
        );
        assert_eq!(resolve("ClusterStatus").unwrap().full, t::CLUSTER_STATUS);
        assert_eq!(resolve("cmi").unwrap().display, "ClusterMachineIdentity");
        assert_eq!(
            resolve("ms").unwrap_err().to_string(),
            "resource type \"ms\" is ambiguous: [machinesets.omni.sidero.dev machinestatuses.omni.sidero.dev]"
        );
        assert_eq!(
            resolve("foo").unwrap_err().to_string(),
            "resource \"foo\" is not registered"
        );
        assert!(
            resolve("cs").is_err(),
            "ClusterStatuses and ClusterSecrets collide"
        );
    }

    #[test]
    fn specs_get_every_field_in_proto_order() {
        let y = normalize_spec(
            t::CLUSTER_STATUS,
            &serde_json::json!({"phase": 3, "machines": {"total": 3}}),
        );
        let keys: Vec<&str> = match &y {
            Yv::Map(e) => e.iter().map(|(k, _)| k.as_str()).collect(),
            _ => vec![],
        };
        assert_eq!(keys[..3], ["available", "machines", "phase"]);
        assert_eq!(
            y.get("machines").and_then(|m| m.get("requested")),
            Some(&Yv::Int(0))
        );
    }
}
