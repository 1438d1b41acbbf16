//! The machine's real `kubectl` judges the twin: after the real provisioning pipeline
//! (`clusterproof provision` against the twin, a service-account kubeconfig from the lab's
//! own `omnictl`), the deployment plan's commands must print what a real Talos cluster
//! prints — `kubectl get nodes` (5 nodes, 3 control planes, Ready, VERSION v1.x),
//! `kubectl get pods -n kube-system`, `kubectl cluster-info`, `kubectl wait --for=condition=Ready
//! nodes --all` — and a node whose kubelet stops shows `NotReady`.
//!
//! kubectl is `$KUBECTL` if set, else the first `kubectl` on `PATH`; `get nodes` also runs
//! with every `kubectl.1.*` installed beside it (e.g. the Cloud SDK's 1.27–1.33). Without any
//! kubectl the test fails, unless `CLUSTERPROOF_SKIP_KUBECTL=1` says to skip it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SKIP_VAR: &str = "CLUSTERPROOF_SKIP_KUBECTL";
const CLUSTER: &str = "talos-prod-01";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `name` in the directories of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The kubectl to use, and the other versions installed beside it (`kubectl.1.NN`, oldest
/// first), looked for next to the binary and next to what it links to.
fn kubectls() -> Option<(PathBuf, Vec<PathBuf>)> {
    let main = match std::env::var_os("KUBECTL") {
        Some(k) if !k.is_empty() => PathBuf::from(k),
        _ => on_path("kubectl")?,
    };
    let mut dirs: Vec<PathBuf> = main.parent().map(Path::to_path_buf).into_iter().collect();
    if let Some(d) = main
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(d);
    }
    let mut others: BTreeMap<(u32, u32), PathBuf> = BTreeMap::new();
    for d in dirs {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(v) = name.strip_prefix("kubectl.") else {
                continue;
            };
            let mut parts = v.split('.').map(|p| p.parse::<u32>());
            if let (Some(Ok(major)), Some(Ok(minor)), None) =
                (parts.next(), parts.next(), parts.next())
            {
                others.entry((major, minor)).or_insert(e.path());
            }
        }
    }
    Some((main, others.into_values().collect()))
}

/// Runs one kubectl binary against the twin's kubeconfig, with a private HOME (its
/// discovery cache) and no inherited KUBECONFIG.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> String {
        let o = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", &self.home)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        let out = text(&o);
        println!("$ kubectl {}\n{out}", args.join(" "));
        assert!(
            o.status.success(),
            "{} {args:?} failed: {out}",
            self.bin.display()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// A kubectl table as (header columns, rows of column → cell). Columns are found where the
/// header has a word after two or more spaces (kubectl pads with at least three), so headers
/// like `NOMINATED NODE` and cells like `Talos (v1.11.5)` stay whole.
fn parse_table(out: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no table in {out:?}"));
    let bytes = header.as_bytes();
    let mut starts = vec![0];
    for i in 2..bytes.len() {
        if bytes[i] != b' ' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let cut = |line: &str, i: usize| -> String {
        let from = starts[i].min(line.len());
        let to = starts.get(i + 1).map_or(line.len(), |&e| e.min(line.len()));
        line.get(from..to).unwrap_or("").trim().to_string()
    };
    let names: Vec<String> = (0..starts.len()).map(|i| cut(header, i)).collect();
    let rows = lines
        .map(|l| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), cut(l, i)))
                .collect()
        })
        .collect();
    (names, rows)
}

/// Whether `age` is a kubectl/apimachinery human duration (`5s`, `2m5s`, `3h`, `2d4h`, …).
fn is_age(age: &str) -> bool {
    let mut rest = age;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let unit = rest[digits..].chars().next();
        if digits == 0 || !matches!(unit, Some('s' | 'm' | 'h' | 'd' | 'y')) {
            return false;
        }
        rest = &rest[digits + 1..];
        parts += 1;
    }
    (1..=2).contains(&parts)
}

/// Whether `r` is kubectl's RESTARTS cell: a count, `N (AGE ago)` when the last restart's
/// time is known.
fn is_restarts(r: &str) -> bool {
    match r.split_once(' ') {
        None => r.parse::<u32>().is_ok(),
        Some((n, ago)) => {
            n.parse::<u32>().is_ok_and(|n| n > 0)
                && ago
                    .strip_prefix('(')
                    .and_then(|a| a.strip_suffix(" ago)"))
                    .is_some_and(is_age)
        }
    }
}

fn assert_nodes(out: &str, cps: usize, workers: usize, not_ready: Option<&str>) -> Vec<String> {
    let (cols, rows) = parse_table(out);
    assert_eq!(cols, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{out}");
    assert_eq!(rows.len(), cps + workers, "{out}");
    let cp_rows = rows
        .iter()
        .filter(|r| r["ROLES"] == "control-plane")
        .count();
    assert_eq!(cp_rows, cps, "{out}");
    assert_eq!(
        rows.iter().filter(|r| r["ROLES"] == "<none>").count(),
        workers,
        "{out}"
    );
    for r in &rows {
        let want = if Some(r["NAME"].as_str()) == not_ready {
            "NotReady"
        } else {
            "Ready"
        };
        assert_eq!(r["STATUS"], want, "{}: {out}", r["NAME"]);
        assert!(r["VERSION"].starts_with("v1."), "{out}");
        assert!(is_age(&r["AGE"]), "AGE {:?}: {out}", r["AGE"]);
    }
    rows.iter().map(|r| r["NAME"].clone()).collect()
}

// Multi-threaded: the twin keeps serving while this thread waits for the CLIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_sees_a_talos_cluster() {
    let Some((kubectl, older)) = kubectls() else {
        if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
            println!("no kubectl found; skipped because {SKIP_VAR}=1");
            return;
        }
        panic!(
            "no kubectl found (neither $KUBECTL nor `kubectl` on PATH): install kubectl, point \
             KUBECTL at one, or set {SKIP_VAR}=1 to skip this contract test"
        );
    };
    harness::proxmox::tls::install_default_provider();
    let t = twin::Twin::start(twin::TwinOptions {
        exe: Some(env!("CARGO_BIN_EXE_clusterproof").into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let lab_path = t.lab_path().to_path_buf();

    // The real pipeline: `clusterproof provision` against the twin's lab file.
    let out = work.path().join("out");
    let o = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_clusterproof"))
            .args(["provision", "--yes", "--lab"])
            .arg(&lab_path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    });
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A service-account kubeconfig from the lab's own omnictl, as the plan's Step 4 does.
    let lab = harness::model::lab::LabFile::load(&lab_path).unwrap();
    let key = match &lab.omni.service_account_key {
        harness::model::lab::SecretSource::File(p) => std::fs::read_to_string(p).unwrap(),
        other => panic!("the twin's lab names its Omni key in a file, not {other}"),
    };
    let kubeconfig = work.path().join("kubeconfig");
    let o = tokio::task::block_in_place(|| {
        Command::new(&lab.omni.omnictl)
            .arg("kubeconfig")
            .arg(&kubeconfig)
            .args(["-c", CLUSTER, "--service-account", "--user", "clusterproof"])
            .args(["--merge=false", "--force"])
            .env("OMNI_ENDPOINT", &lab.omni.endpoint)
            .env("OMNI_SERVICE_ACCOUNT_KEY", key.trim())
            .env_remove("SIDERO_SERVICE_ACCOUNT_KEY")
            .env("OMNICONFIG", work.path().join("omniconfig"))
            .output()
            .unwrap()
    });
    assert!(o.status.success(), "{}", text(&o));
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let k = Kubectl {
        bin: kubectl.clone(),
        kubeconfig,
        home,
    };

    tokio::task::block_in_place(|| {
        println!("kubectl: {}", k.bin.display());
        k.run(&["version", "--client"]);

        // kubectl get nodes: 3 control planes + 2 workers from the template, all Ready.
        let before = t.kube.request_counts();
        let names = assert_nodes(&k.run(&["get", "nodes"]), 3, 2, None);
        let asked = t.kube.request_counts().since(&before);
        assert_eq!(asked.count("LIST", "nodes"), 1, "{asked:?}");
        assert_eq!(asked.mutating, 0, "{asked:?}");
        for n in &names {
            assert!(t.proxmox.vm_by_name(n).is_some(), "no VM named {n}");
        }

        let wide = k.run(&["get", "nodes", "-o", "wide"]);
        let (cols, rows) = parse_table(&wide);
        assert_eq!(
            cols,
            [
                "NAME",
                "STATUS",
                "ROLES",
                "AGE",
                "VERSION",
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME"
            ],
            "{wide}"
        );
        for r in &rows {
            assert!(
                r["INTERNAL-IP"].parse::<std::net::Ipv4Addr>().is_ok(),
                "{wide}"
            );
            assert_eq!(r["EXTERNAL-IP"], "<none>", "{wide}");
            assert!(r["OS-IMAGE"].starts_with("Talos ("), "{wide}");
            assert!(
                r["CONTAINER-RUNTIME"].starts_with("containerd://"),
                "{wide}"
            );
        }

        // kubectl get pods -n kube-system: every pod Running with all containers ready;
        // RESTARTS is a count, with the last restart's age when there was one.
        let pods = k.run(&["get", "pods", "-n", "kube-system"]);
        let (cols, rows) = parse_table(&pods);
        assert_eq!(
            cols,
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            "{pods}"
        );
        assert!(!rows.is_empty(), "{pods}");
        for r in &rows {
            let (ready, total) = r["READY"].split_once('/').unwrap();
            assert_eq!(ready, total, "{pods}");
            assert_eq!(r["STATUS"], "Running", "{pods}");
            assert!(
                is_restarts(&r["RESTARTS"]),
                "RESTARTS {:?}: {pods}",
                r["RESTARTS"]
            );
            assert!(is_age(&r["AGE"]), "{pods}");
        }
        let pods_wide = k.run(&["get", "pods", "-n", "kube-system", "-o", "wide"]);
        let (cols, rows) = parse_table(&pods_wide);
        assert_eq!(
            cols,
            [
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED NODE",
                "READINESS GATES"
            ],
            "{pods_wide}"
        );
        for r in &rows {
            assert!(names.contains(&r["NODE"]), "{pods_wide}");
            assert_eq!(r["NOMINATED NODE"], "<none>", "{pods_wide}");
        }

        // kubectl cluster-info names the API server the kubeconfig points at.
        let info = k.run(&["cluster-info"]);
        let first = info.lines().next().unwrap_or_default();
        let url = t.kube.url();
        assert!(
            first.contains("Kubernetes control plane")
                && first.contains("is running at")
                && first.contains(&url),
            "{info}"
        );

        // kubectl wait --for=condition=Ready nodes --all.
        let waited = k.run(&[
            "wait",
            "--for=condition=Ready",
            "nodes",
            "--all",
            "--timeout=60s",
        ]);
        let met: Vec<&str> = waited
            .lines()
            .filter(|l| l.ends_with("condition met"))
            .collect();
        assert_eq!(met.len(), names.len(), "{waited}");
        for n in &names {
            assert!(
                waited.contains(&format!("node/{n} condition met")),
                "{waited}"
            );
        }

        // The API server's own health, verbose, as kube-apiserver prints it.
        let ready = k.run(&["get", "--raw", "/readyz?verbose"]);
        assert!(ready.starts_with("[+]ping ok\n"), "{ready}");
        assert!(ready.contains("[+]etcd ok\n"), "{ready}");
        assert!(ready.ends_with("readyz check passed\n"), "{ready}");

        // Every other installed kubectl version prints the same nodes.
        for bin in &older {
            let other = Kubectl {
                bin: bin.clone(),
                kubeconfig: k.kubeconfig.clone(),
                home: k.home.clone(),
            };
            println!("kubectl: {}", bin.display());
            assert_nodes(&other.run(&["get", "nodes"]), 3, 2, None);
        }

        // A worker's kubelet stops: once the node lifecycle controller marks it Unknown,
        // kubectl shows it NotReady and the others still Ready.
        let worker = names
            .iter()
            .find(|n| n.contains("-workers-"))
            .expect("a worker node")
            .clone();
        t.kube.set_kubelet_alive(&worker, false).unwrap();
        let node = format!("node/{worker}");
        k.run(&[
            "wait",
            "--for=condition=Ready=Unknown",
            &node,
            "--timeout=60s",
        ]);
        assert_nodes(&k.run(&["get", "nodes"]), 3, 2, Some(&worker));
        let one = k.run(&["get", "node", &worker]);
        let (_, rows) = parse_table(&one);
        assert_eq!(
            (rows.len(), rows[0]["STATUS"].as_str()),
            (1, "NotReady"),
            "{one}"
        );
    });
    println!(
        "older kubectl versions checked: {}",
        older
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    t.shutdown().await;
}

#[test]
fn tables_parse_by_header_columns() {
    let out = "NAME   READY   STATUS    NOMINATED NODE   OS-IMAGE\n\
               a      1/1     Running   <none>           Talos (v1.11.5)\n";
    let (cols, rows) = parse_table(out);
    assert_eq!(
        cols,
        ["NAME", "READY", "STATUS", "NOMINATED NODE", "OS-IMAGE"]
    );
    assert_eq!(rows[0]["OS-IMAGE"], "Talos (v1.11.5)");
    assert_eq!(rows[0]["NOMINATED NODE"], "<none>");
    for (r, ok) in [
        ("0", true),
        ("5 (3m2s ago)", true),
        ("5", true),
        ("0 (1s ago)", false),
        ("2 (x ago)", false),
    ] {
        assert_eq!(is_restarts(r), ok, "{r}");
    }
    for (age, ok) in [
        ("5s", true),
        ("2m5s", true),
        ("3h", true),
        ("0s", true),
        ("", false),
        ("5x", false),
        ("1m2s3h", false),
    ] {
        assert_eq!(is_age(age), ok, "{age}");
    }
}
