//! The twin's Omni through the real `omnictl-twin` binary, the way clusterproof's Omni
//! driver runs `omnictl`: service-account key and endpoint in the environment, a private
//! OMNICONFIG, `-o json` parsed as a stream of objects (shared/reference/omni.md).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use twin::omni::{OmniFault, OmniSpec, OmniTwin, Resource};

const PROVIDER: &str = "matrix-cluster";
const ACCOUNT: &str = "clusterproof@serviceaccount.omni.sidero.dev";

struct Fx {
    twin: OmniTwin,
    dir: tempfile::TempDir,
}

async fn start(faults: Vec<OmniFault>) -> Fx {
    let twin = OmniTwin::start(OmniSpec {
        provider_id: PROVIDER.into(),
        account: ACCOUNT.into(),
        faults: vec![],
        omni_faults: faults,
    })
    .await
    .unwrap();
    Fx {
        twin,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
        .display()
        .to_string()
}

const TEMPLATE: &str = "seed/clusters/talos-prod-01.yaml";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Fx {
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnictl-twin"));
        c.args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("OMNICONFIG", self.dir.path().join("omniconfig"))
            .env("OMNI_ENDPOINT", self.twin.endpoint())
            .env("OMNI_SERVICE_ACCOUNT_KEY", self.twin.service_account_key())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(30), self.command(args, env).output())
            .await
            .expect("omnictl-twin did not finish")
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[]).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert_eq!(r.code, 0, "omnictl {args:?} failed: {}", r.stderr);
        r.stdout
    }

    async fn apply_classes(&self) {
        for class in ["matrix-control-plane", "matrix-worker"] {
            let out = self
                .ok(&[
                    "apply",
                    "-f",
                    &fixture(&format!("seed/machine-classes/{class}.yaml")),
                ])
                .await;
            assert_eq!(out, "", "apply prints nothing");
        }
    }

    async fn sync(&self) -> String {
        self.apply_classes().await;
        self.ok(&["cluster", "template", "sync", "-f", &fixture(TEMPLATE)])
            .await
    }

    async fn json(&self, args: &[&str]) -> Vec<Value> {
        parse_stream(&self.ok(args).await)
    }
}

/// omnictl's `-o json`: concatenated pretty objects, not an array (omni.md §3.2).
fn parse_stream(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("not a JSON object stream: {e}\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_machine_classes_list_as_a_sorted_json_stream() {
    let fx = start(vec![]).await;
    fx.apply_classes().await;
    assert!(
        fx.dir.path().join("omniconfig").exists(),
        "omnictl creates its omniconfig"
    );
    let text = fx.ok(&["get", "machineclasses", "-o", "json"]).await;
    assert!(
        text.starts_with("{\n    \"metadata\": {\n        \"created\": "),
        "4-space indent, sorted keys:\n{text}"
    );
    assert!(
        !text.trim_start().starts_with('['),
        "a stream, not an array"
    );
    let items = parse_stream(&text);
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["metadata"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["matrix-control-plane", "matrix-worker"]);
    assert_eq!(items[0]["metadata"]["owner"], Value::Null);
    assert_eq!(items[0]["metadata"]["version"], 1);
    assert_eq!(items[0]["spec"]["autoprovision"]["providerid"], PROVIDER);
    assert_eq!(items[0]["spec"]["autoprovision"]["grpctunnel"], 0);
    assert_eq!(items[0]["spec"]["matchlabels"], json!([]));
    assert!(
        text.contains("name == \\\"local-lvm\\\""),
        "providerdata kept verbatim"
    );
    // YAML and table forms of the same.
    let yaml = fx
        .ok(&["get", "machineclass", "matrix-worker", "-o", "yaml"])
        .await;
    assert!(
        yaml.starts_with("metadata:\n    namespace: default\n    type: MachineClasses.omni.sidero.dev\n    id: matrix-worker\n    version: 1\n    owner:\n    phase: running\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("        providerdata: |\n            cores: 8\n"),
        "{yaml}"
    );
    let table = fx.ok(&["get", "machineclasses"]).await;
    assert_eq!(
        table.lines().next(),
        Some("NAMESPACE   TYPE           ID                     VERSION")
    );
    // A class the provider's schema rejects: Omni's InvalidArgument text.
    let bad = fx
        .run(&["apply", "-f", &fixture("bad/class-missing-required.yaml")])
        .await;
    assert_eq!(bad.code, 1);
    assert_eq!(
        bad.stderr,
        "Error: rpc error: code = InvalidArgument desc = failed to validate: - config value \".storage_selector\": is required\n"
    );
    let bad = fx
        .run(&["apply", "-f", &fixture("bad/class-wrong-provider.yaml")])
        .await;
    assert_eq!(
        bad.stderr,
        "Error: rpc error: code = InvalidArgument desc = failed to validate: failed to get provider: resource InfraProviderStatuses.omni.sidero.dev(infra-provider/proxmox@undefined) doesn't exist\n"
    );
    fx.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_sync_creates_omni_resources_once_and_requests_machines() {
    let fx = start(vec![]).await;
    fx.apply_classes().await;
    let v = fx
        .run_env(
            &["cluster", "template", "validate", "-f", &fixture(TEMPLATE)],
            &[("OMNI_ENDPOINT", "")],
        )
        .await;
    assert_eq!((v.code, v.stdout.as_str(), v.stderr.as_str()), (0, "", ""));
    let out = fx
        .ok(&["cluster", "template", "sync", "-f", &fixture(TEMPLATE)])
        .await;
    assert_eq!(
        out,
        "* creating Clusters.omni.sidero.dev(talos-prod-01)\n\
         * creating ConfigPatches.omni.sidero.dev(200-cluster-talos-prod-01-disable-default-cni-and-kube-proxy)\n\
         * creating ConfigPatches.omni.sidero.dev(201-cluster-talos-prod-01-node-labels)\n\
         * creating MachineSets.omni.sidero.dev(talos-prod-01-control-planes)\n\
         * creating MachineSets.omni.sidero.dev(talos-prod-01-workers)\n"
    );
    let before = fx.json(&["get", "machinesets", "-o", "json"]).await;
    let again = fx
        .ok(&["cluster", "template", "sync", "-f", &fixture(TEMPLATE)])
        .await;
    assert_eq!(again, "", "an unchanged template syncs to nothing");
    assert_eq!(fx.json(&["get", "machinesets", "-o", "json"]).await, before);
    assert_eq!(
        fx.ok(&["cluster", "template", "diff", "-f", &fixture(TEMPLATE)])
            .await,
        ""
    );

    let cluster = &fx
        .json(&["get", "cluster", "talos-prod-01", "-o", "json"])
        .await[0];
    assert_eq!(cluster["spec"]["talosversion"], "1.11.5");
    assert_eq!(cluster["spec"]["kubernetesversion"], "1.34.2");
    assert_eq!(
        cluster["metadata"]["annotations"]["omni.sidero.dev/managed-by-cluster-templates"],
        Value::Null
    );
    let cp = &before[0];
    assert_eq!(
        cp["metadata"]["labels"]["omni.sidero.dev/cluster"],
        "talos-prod-01"
    );
    assert_eq!(
        cp["spec"]["machineallocation"],
        json!({"allocationtype": 0, "machinecount": 3, "name": "matrix-control-plane"})
    );

    // MachineRequestSet (id = MachineSet id) and 3 + 2 MachineRequests (omni.md §1).
    let sets = fx.json(&["get", "machinerequestsets", "-o", "json"]).await;
    let counts: Vec<(String, i64)> = sets
        .iter()
        .map(|s| {
            (
                s["metadata"]["id"].as_str().unwrap().to_string(),
                s["spec"]["machinecount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("talos-prod-01-control-planes".to_string(), 3),
            ("talos-prod-01-workers".to_string(), 2)
        ]
    );
    assert_eq!(sets[0]["spec"]["providerid"], PROVIDER);
    assert_eq!(sets[0]["spec"]["talosversion"], "1.11.5");
    let requests = fx.json(&["get", "machinerequests", "-o", "json"]).await;
    assert_eq!(requests.len(), 5);
    let mut per_set = std::collections::BTreeMap::<String, usize>::new();
    for r in &requests {
        let id = r["metadata"]["id"].as_str().unwrap();
        let set = r["metadata"]["labels"]["omni.sidero.dev/machine-request-set"]
            .as_str()
            .unwrap();
        let suffix = id.strip_prefix(&format!("{set}-")).unwrap();
        assert_eq!(suffix.len(), 6, "{id}");
        assert!(
            suffix
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{id}"
        );
        assert_eq!(r["metadata"]["namespace"], "infra-provider");
        assert_eq!(
            r["metadata"]["labels"]["omni.sidero.dev/infra-provider-id"],
            PROVIDER
        );
        *per_set.entry(set.to_string()).or_default() += 1;
    }
    assert_eq!(per_set["talos-prod-01-control-planes"], 3);
    assert_eq!(per_set["talos-prod-01-workers"], 2);
    assert_eq!(fx.twin.list("machinerequest").len(), 5);
    let workers = fx
        .json(&[
            "get",
            "machinerequests",
            "-l",
            "omni.sidero.dev/machine-request-set=talos-prod-01-workers",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(workers.len(), 2);
    fx.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_templates_fail_with_omnis_messages() {
    let fx = start(vec![]).await;
    let r = fx
        .run(&[
            "cluster",
            "template",
            "validate",
            "-f",
            &fixture("bad/two-controlplanes.yaml"),
        ])
        .await;
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "Error: 1 error occurred:\n\t* template should contain 1 controlplane, got 2\n\n\n"
    );
    let r = fx
        .run(&[
            "cluster",
            "template",
            "validate",
            "-f",
            &fixture("bad/unknown-field.yaml"),
        ])
        .await;
    assert_eq!(
        r.stderr,
        "Error: error loading template: error decoding document at line 2:1: yaml: construct errors: line 6: field kubernetesVersion not found in type models.Cluster\n"
    );
    let r = fx
        .run(&[
            "cluster",
            "template",
            "sync",
            "-f",
            &fixture("bad/version-without-v.yaml"),
        ])
        .await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(&format!(
            "Error: failed to sync template \"{}\": 1 error occurred:\n\t* error validating cluster \"talos-prod-01\": 1 error occurred:\n\t* error validating Talos version: version should start with 'v'\n",
            fixture("bad/version-without-v.yaml")
        )),
        "{}",
        r.stderr
    );
    fx.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_errors_follow_omnictl() {
    let fx = start(vec![]).await;
    let r = fx
        .run(&["get", "clusterstatus", "nope", "-o", "json"])
        .await;
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert_eq!(
        r.stderr,
        "Error: rpc error: code = NotFound desc = resource ClusterStatuses.omni.sidero.dev(default/nope@undefined) doesn't exist\n"
    );
    let r = fx.run(&["get", "foo"]).await;
    assert_eq!(r.stderr, "Error: resource \"foo\" is not registered\n");
    let r = fx.run(&["get", "ms"]).await;
    assert_eq!(
        r.stderr,
        "Error: resource type \"ms\" is ambiguous: [machinesets.omni.sidero.dev machinestatuses.omni.sidero.dev]\n"
    );
    let r = fx.run(&["get", "clusters", "-o", "xml"]).await;
    assert_eq!(r.stderr, "Error: output format \"xml\" is not supported\n");
    let r = fx.run(&["get", "clusters", "a", "-l", "x=y"]).await;
    assert_eq!(
        r.stderr,
        "Error: cannot specify both resource ID and selector\n"
    );
    let r = fx.run(&["frobnicate"]).await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "Error: unknown command \"frobnicate\" for \"omnictl\"\nRun 'omnictl --help' for usage.\n"
        )
    );
    let r = fx.run(&["get", "clusters", "--frob"]).await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Error: unknown flag: --frob\n")
    );
    // Empty lists: nothing for json/yaml, the header for tables.
    assert_eq!(fx.ok(&["get", "clusters", "-o", "json"]).await, "");
    assert_eq!(
        fx.ok(&["get", "clusterstatus"]).await,
        "NAMESPACE   TYPE   ID   VERSION   AVAILABLE   PHASE   MACHINES   HEALTHY\n"
    );
    // Default namespaces: the seeded provider resources need no -n.
    let status = &fx
        .json(&["get", "infraproviderstatus", PROVIDER, "-o", "json"])
        .await[0];
    assert_eq!(status["metadata"]["namespace"], "infra-provider");
    let schema: Value = serde_json::from_str(status["spec"]["schema"].as_str().unwrap()).unwrap();
    assert_eq!(
        schema["required"],
        json!(["cores", "memory", "disk_size", "storage_selector"])
    );
    let combined = &fx
        .json(&["get", "infraprovidercombinedstatus", PROVIDER, "-o", "json"])
        .await[0];
    assert_eq!(combined["metadata"]["namespace"], "ephemeral");
    assert_eq!(combined["spec"]["health"]["connected"], true);
    let sys = &fx.json(&["get", "sysversion", "-o", "json"]).await[0];
    assert_eq!(sys["metadata"]["namespace"], "ephemeral");
    fx.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_start_with_created_events_and_follow_changes() {
    let fx = start(vec![]).await;
    fx.sync().await;
    let mut child = fx
        .command(&["get", "machinerequests", "-w", "-o", "json"], &[])
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = Vec::new();
    let mut events: Vec<Value> = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while events.len() < 6 {
            let n = stdout.read(&mut chunk).await.unwrap();
            assert!(n > 0, "watch ended early");
            buf.extend_from_slice(&chunk[..n]);
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            let mut parsed = Vec::new();
            let mut consumed = 0;
            while let Some(Ok(v)) = it.next() {
                parsed.push(v);
                consumed = it.byte_offset();
            }
            buf.drain(..consumed);
            events.extend(parsed);
            if events.len() == 5 {
                // Bootstrap done: change one request through the twin's API.
                let mut r = fx.twin.list("machinerequest").remove(0);
                r = r.with_finalizer(format!("{PROVIDER}.ProvisionController"));
                fx.twin.put(r);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("watch events");
    child.kill().await.unwrap();
    assert!(
        events[..5].iter().all(|e| e["event"] == "created"),
        "{events:?}"
    );
    assert_eq!(events[5]["event"], "updated");
    assert_eq!(
        events[5]["metadata"]["finalizers"],
        json!(["matrix-cluster.ProvisionController"])
    );
    assert_eq!(events[5]["metadata"]["version"], 2);
    fx.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_and_a_disconnected_provider_look_like_omni() {
    let fx = start(vec![
        OmniFault::AuthExpired,
        OmniFault::ProviderDisconnected,
    ])
    .await;
    let r = fx.run(&["get", "clusters", "-o", "json"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: rpc error: code = Unauthenticated desc = invalid signature\n"
    );
    // validate is offline and does not authenticate.
    let v = fx
        .run(&["cluster", "template", "validate", "-f", &fixture(TEMPLATE)])
        .await;
    assert_eq!(v.code, 0, "{}", v.stderr);
    fx.twin.set_fault(OmniFault::AuthExpired, false);
    let combined = &fx
        .json(&["get", "infraprovidercombinedstatus", PROVIDER, "-o", "json"])
        .await[0];
    assert_eq!(combined["spec"]["health"]["connected"], false);
    fx.twin.set_fault(OmniFault::ProviderDisconnected, false);
    let combined = &fx
        .json(&["get", "infraprovidercombinedstatus", PROVIDER, "-o", "json"])
        .await[0];
    assert_eq!(combined["spec"]["health"]["connected"], true);
    fx.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_fail_locally_before_any_network_call() {
    let fx = start(vec![]).await;
    let offline = [("OMNI_ENDPOINT", "http://127.0.0.1:9")];
    let r = fx
        .run_env(
            &["get", "clusters"],
            &[offline[0], ("OMNI_SERVICE_ACCOUNT_KEY", "not*base64")],
        )
        .await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Error: illegal base64 data at input byte 3\n")
    );
    // SIDERO_SERVICE_ACCOUNT_KEY wins by presence, even empty.
    let r = fx
        .run_env(
            &["get", "clusters"],
            &[offline[0], ("SIDERO_SERVICE_ACCOUNT_KEY", "")],
        )
        .await;
    assert_eq!(r.stderr, "Error: unexpected end of JSON input\n");
    // A well-formed key reaches the (absent) endpoint.
    let r = fx.run_env(&["get", "clusters"], &offline).await;
    assert!(
        r.stderr
            .starts_with("Error: rpc error: code = Unavailable desc = connection error:"),
        "{}",
        r.stderr
    );
    // A key for another identity is rejected by Omni.
    let other = twin::omni::service_account_key("someone-else");
    let r = fx
        .run_env(
            &["get", "clusters"],
            &[("OMNI_SERVICE_ACCOUNT_KEY", &other)],
        )
        .await;
    assert_eq!(
        r.stderr,
        "Error: rpc error: code = Unauthenticated desc = invalid signature\n"
    );
    fx.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_is_written_locally_with_omnictls_errors() {
    let fx = start(vec![]).await;
    let kc = [
        "kubeconfig",
        "out/talos.kubeconfig",
        "-c",
        "talos-prod-01",
        "--service-account",
        "--user",
        "clusterproof",
        "--merge=false",
        "--force",
    ];
    let r = fx.run(&kc).await;
    assert_eq!(r.stderr, "Error: cluster not found: \"talos-prod-01\"\n");
    fx.sync().await;
    let r = fx
        .run(&[
            "kubeconfig",
            "out/kc",
            "-c",
            "talos-prod-01",
            "--service-account",
            "--merge=false",
        ])
        .await;
    assert_eq!(
        r.stderr,
        "Error: --user flag is required when --service-account is set to true\n"
    );
    let r = fx.run(&kc).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("set_kubeconfig_provider"), "{}", r.stderr);
    fx.twin.set_kubeconfig_provider(Box::new(|cluster, user| {
        Some(format!(
            "apiVersion: v1\nkind: Config\n# {cluster} {user}\n"
        ))
    }));
    let r = fx.run(&kc).await;
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let written: PathBuf = fx.dir.path().join("out/talos.kubeconfig");
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        "apiVersion: v1\nkind: Config\n# talos-prod-01 clusterproof\n"
    );
    let r = fx
        .run(&[
            "kubeconfig",
            "out/talos.kubeconfig",
            "-c",
            "talos-prod-01",
            "--service-account",
            "--user",
            "u",
            "--merge=false",
        ])
        .await;
    assert_eq!(
        r.stderr,
        "Error: kubeconfig file already exists, use --force to overwrite: \"out/talos.kubeconfig\"\n"
    );
    // A directory gets `kubeconfig` inside it.
    let r = fx
        .run(&[
            "kubeconfig",
            "out",
            "-c",
            "talos-prod-01",
            "--service-account",
            "--user",
            "u",
            "--merge=false",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(fx.dir.path().join("out/kubeconfig").exists());
    fx.twin.shutdown().await;
}

fn status_resources(fx: &Fx, ready: bool) {
    let phase = if ready { 3 } else { 1 };
    fx.twin.put(
        Resource::in_default_namespace(
            "clusterstatus",
            "talos-prod-01",
            json!({"available": true, "phase": phase, "ready": ready, "machines": {"total": 1, "healthy": u8::from(ready)}}),
        )
        .with_label("omni.sidero.dev/cluster", "talos-prod-01"),
    );
    fx.twin.put(
        Resource::in_default_namespace(
            "machinesetstatus",
            "talos-prod-01-control-planes",
            json!({"phase": phase, "ready": ready, "machines": {"total": 1, "healthy": u8::from(ready)}}),
        )
        .with_label("omni.sidero.dev/cluster", "talos-prod-01")
        .with_label("omni.sidero.dev/role-controlplane", ""),
    );
    fx.twin.put(
        Resource::in_default_namespace(
            "clustermachinestatus",
            "3f1c2a9e-5b7d-4c21-9f3e-8a6d2b1c4e70",
            json!({"ready": ready, "stage": if ready { 4 } else { 1 }, "configuptodate": true}),
        )
        .with_label("omni.sidero.dev/cluster", "talos-prod-01")
        .with_label(
            "omni.sidero.dev/machine-set",
            "talos-prod-01-control-planes",
        )
        .with_label(
            "omni.sidero.dev/node-name",
            "talos-prod-01-control-planes-x7k2pq",
        )
        .with_label("omni.sidero.dev/connected", ""),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_the_tree_and_delete_tears_the_cluster_down() {
    let fx = start(vec![]).await;
    fx.sync().await;
    status_resources(&fx, false);
    let args = [
        "cluster",
        "template",
        "status",
        "-f",
        &fixture(TEMPLATE),
        "--wait",
        "0",
    ];
    let r = fx.run(&args).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        "Cluster \"talos-prod-01\" SCALING_UP Not Ready (0/1) (healthy/total)\n\
         └── Control Plane \"talos-prod-01-control-planes\" ScalingUp Not Ready (0/1)\n    \
             └── Machine \"3f1c2a9e-5b7d-4c21-9f3e-8a6d2b1c4e70\"(talos-prod-01-control-planes-x7k2pq) BOOTING\n"
    );
    assert_eq!(r.stderr, "Error: cluster is not healthy\n");
    status_resources(&fx, true);
    let r = fx.run(&args).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .ends_with("(talos-prod-01-control-planes-x7k2pq) RUNNING Ready\n"),
        "{}",
        r.stdout
    );

    let out = fx
        .ok(&["cluster", "template", "delete", "-f", &fixture(TEMPLATE)])
        .await;
    assert_eq!(
        out,
        "* tearing down Clusters.omni.sidero.dev(talos-prod-01)\n* destroyed Clusters.omni.sidero.dev(talos-prod-01)\n"
    );
    assert_eq!(fx.ok(&["get", "machinerequests", "-o", "json"]).await, "");
    assert_eq!(fx.ok(&["get", "machinesets", "-o", "json"]).await, "");
    assert_eq!(fx.ok(&["get", "configpatches", "-o", "json"]).await, "");
    fx.twin.shutdown().await;
}
