//! What a check is (`Scenario`), what it concludes (`Outcome`), and what it may use (`Lab`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::events::Emitter;
use crate::source::{Finding, Severity};
use crate::spec::LabSpec;

/// When a scenario runs. Phases run in this order; a failed phase stops the ones after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Preflight,
    Provision,
    Verify,
    Chaos,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Preflight,
        Phase::Provision,
        Phase::Verify,
        Phase::Chaos,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Provision => "provision",
            Phase::Verify => "verify",
            Phase::Chaos => "chaos",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a scenario needs from the lab. The runner skips a scenario whose needs are not
/// available (e.g. `lint` has no live drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// Only the parsed inputs (lab file, template, classes): works offline.
    Spec,
    Proxmox,
    Dns,
    Omni,
    Kube,
}

/// What a scenario is, declared once per scenario as a `static` next to its code, so the
/// catalog, the runner, `--only` and the reports all read the same facts. Prerequisites are
/// references to other scenarios' `Meta`, so a typo does not compile.
#[derive(Debug)]
pub struct Meta {
    /// Stable id, `phase::name`, e.g. `preflight::template` — its module path in `scenarios`.
    pub id: &'static str,
    /// `module_path!()` where the scenario is declared; the catalog test checks it ends in
    /// the id.
    pub module: &'static str,
    pub phase: Phase,
    /// The line of the deployment plan this scenario proves.
    pub proves: &'static str,
    pub needs: &'static [Need],
    /// Scenarios that must finish, and pass, before this one starts (provisioning steps are
    /// ordered; chaos comes after the checks it gates on). Empty: it runs concurrently with
    /// the others of its phase.
    pub after: &'static [&'static Meta],
}

impl Meta {
    /// The ids of [`Meta::after`].
    pub fn after_ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.after.iter().map(|m| m.id)
    }
}

/// A check. One module per scenario in the `scenarios` crate; the doc comment of the module
/// names the plan line it proves, its [`Meta`] says the rest.
pub trait Scenario: Send + Sync {
    fn meta(&self) -> &'static Meta;
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome>;

    /// Stable id, `phase::name`, e.g. `preflight::template`.
    fn id(&self) -> &'static str {
        self.meta().id
    }
    fn phase(&self) -> Phase {
        self.meta().phase
    }
    /// The line of the deployment plan this scenario proves.
    fn proves(&self) -> &'static str {
        self.meta().proves
    }
    fn needs(&self) -> &'static [Need] {
        self.meta().needs
    }

    /// How long this scenario may run, when the run's default is not enough (chaos: its
    /// lab timeouts added up). The runner takes the longer of the two.
    fn timeout(&self, _lab: &Lab) -> Option<Duration> {
        None
    }

    /// The restore stage: what undoes this scenario's changes to the lab. The runner runs it
    /// after [`Scenario::run`] ends on every path — pass, fail, error, timeout, interrupt
    /// (Ctrl-C, SIGTERM), panic — in a task of its own, with its own deadline. `None`:
    /// nothing to restore.
    fn restore<'a>(&'a self, _cx: &'a Context) -> Option<(Duration, BoxFuture<'a, Restored>)> {
        None
    }
}

/// What a restore stage did: evidence lines, or why the lab may still be changed (the
/// scenario's verdict becomes an error naming it).
pub type Restored = Result<Vec<String>, String>;

/// Tells a running scenario to stop: set by the runner on an interrupt, before the restore
/// stage. A scenario that selects on [`Cancel::cancelled`] ends with what it has observed.
#[derive(Clone)]
pub struct Cancel {
    tx: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel {
            tx: Arc::new(tokio::sync::watch::channel(None).0),
        }
    }
}

impl Cancel {
    pub fn cancel(&self, reason: &str) {
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason.to_string());
                true
            } else {
                false
            }
        });
    }

    /// Why the run was cancelled, if it was.
    pub fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
    }

    /// Resolves with the reason once cancelled.
    pub async fn cancelled(&self) -> String {
        let mut rx = self.tx.subscribe();
        let reason = rx.wait_for(|r| r.is_some()).await.map(|r| r.clone());
        match reason {
            Ok(r) => r.unwrap_or_default(),
            // The sender lives as long as `self`.
            Err(_) => std::future::pending().await,
        }
    }
}

/// The connected lab: parsed inputs plus the drivers this run may use. Drivers that are
/// not connected are `None` (offline lint has only the spec).
pub struct Lab {
    pub spec: LabSpec,
    pub proxmox: Option<crate::proxmox::ProxmoxClient>,
    /// Resolver answering the LAN view (`dns.lan_view`).
    pub dns_lan: Option<crate::dns::DnsClient>,
    /// Resolver answering the public view (`dns.public_view`), when the lab names one.
    pub dns_public: Option<crate::dns::DnsClient>,
    pub omni: Option<crate::omni::OmniClient>,
    /// Facts about how this run connects that every report must show (e.g. TLS disabled).
    pub notices: Vec<String>,
    /// Whether this run may change the lab (provisioning, chaos): `--yes`, or the built-in twin.
    pub allow_changes: bool,
    /// `--dry-run`: say what would be done, send no mutating request.
    pub dry_run: bool,
    kube: tokio::sync::OnceCell<KubeAccess>,
}

/// The cluster's API, reached through a kubeconfig file that exists for as long as the run.
struct KubeAccess {
    client: crate::kube::KubeClient,
    path: std::path::PathBuf,
    /// A kubeconfig asked from Omni: a private file, removed when the run's lab is dropped.
    _private: Option<tempfile::TempPath>,
}

/// The token subject of the service-account kubeconfig clusterproof asks Omni for.
pub const SERVICE_ACCOUNT_USER: &str = "clusterproof";

/// A lab that cannot be connected because its configuration is unusable (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Proxmox(#[from] crate::proxmox::ProxmoxError),
    #[error(transparent)]
    Omni(#[from] crate::omni::OmniError),
}

/// Timeouts for each request to the lab's APIs.
pub const PROXMOX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
pub const DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
pub const OMNI_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How a run connects.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The needs of the scenarios that will run: only these drivers are built.
    pub needs: Vec<Need>,
    pub allow_changes: bool,
    pub dry_run: bool,
}

impl Lab {
    pub fn offline(spec: LabSpec) -> Self {
        Lab {
            spec,
            proxmox: None,
            dns_lan: None,
            dns_public: None,
            omni: None,
            notices: Vec::new(),
            allow_changes: false,
            dry_run: false,
            kube: tokio::sync::OnceCell::new(),
        }
    }

    /// Build the drivers the scenarios need. Nothing is sent until a scenario asks; this
    /// fails only when the configuration itself is unusable (missing secret, bad CA file).
    pub fn connect(spec: LabSpec, opts: ConnectOptions) -> Result<Self, ConnectError> {
        let mut lab = Lab::offline(spec);
        // A dry run changes nothing, whatever else allows it.
        lab.allow_changes = opts.allow_changes && !opts.dry_run;
        lab.dry_run = opts.dry_run;
        if opts.needs.contains(&Need::Proxmox) {
            let px = crate::proxmox::ProxmoxClient::new(&lab.spec.lab.proxmox, PROXMOX_TIMEOUT)?;
            lab.notices.extend(px.notices.iter().cloned());
            lab.proxmox = Some(px);
        }
        if opts.needs.contains(&Need::Dns) {
            lab.dns_lan = Some(crate::dns::DnsClient::new(
                lab.spec.lab.dns.lan_view,
                DNS_TIMEOUT,
            ));
            lab.dns_public = lab
                .spec
                .lab
                .dns
                .public_view
                .map(|a| crate::dns::DnsClient::new(a, DNS_TIMEOUT));
        }
        // Without a kubeconfig in the lab, the cluster's API is reached through a service
        // account kubeconfig that Omni hands out: a run needing Kube needs Omni too.
        let kube_via_omni = opts.needs.contains(&Need::Kube)
            && !matches!(
                lab.spec.lab.kubernetes,
                crate::model::lab::Kubernetes::Kubeconfig { .. }
            );
        if opts.needs.contains(&Need::Omni) || kube_via_omni {
            lab.omni = Some(crate::omni::OmniClient::new(
                &lab.spec.lab.omni,
                OMNI_TIMEOUT,
            )?);
        }
        Ok(lab)
    }

    pub fn has(&self, need: Need) -> bool {
        match need {
            Need::Spec => true,
            Need::Proxmox => self.proxmox.is_some(),
            Need::Dns => self.dns_lan.is_some(),
            Need::Omni => self.omni.is_some(),
            // A kubeconfig the lab names, or one asked from Omni on first use: see `kube()`.
            Need::Kube => {
                matches!(
                    self.spec.lab.kubernetes,
                    crate::model::lab::Kubernetes::Kubeconfig { .. }
                ) || self.omni.is_some()
            }
        }
    }

    /// The Proxmox driver, or the outcome a scenario returns without it (`?` in scenarios).
    #[allow(clippy::result_large_err)] // the Err is the scenario's final answer, returned once
    pub fn proxmox(&self) -> Result<&crate::proxmox::ProxmoxClient, Outcome> {
        self.proxmox
            .as_ref()
            .ok_or_else(|| Outcome::skip("no Proxmox connection in this run"))
    }

    /// The Omni driver, or the outcome a scenario returns without it.
    #[allow(clippy::result_large_err)]
    pub fn omni(&self) -> Result<&crate::omni::OmniClient, Outcome> {
        self.omni
            .as_ref()
            .ok_or_else(|| Outcome::skip("no Omni connection in this run"))
    }

    /// The Kubernetes client, built on first use from the lab's `[kubernetes]` kubeconfig or
    /// from a service-account kubeconfig asked from Omni (`omnictl kubeconfig PATH
    /// --service-account`), written to a private file under the state directory — never into
    /// a report directory — and removed when this lab is dropped. A failure is not kept: the
    /// next call asks again (the cluster may not exist yet early in provisioning).
    pub async fn kube(&self) -> Result<&crate::kube::KubeClient, crate::kube::KubeError> {
        Ok(&self.kube_access().await?.client)
    }

    /// The kubeconfig file behind [`Lab::kube`], for CLIs that need one (`cilium`). It holds a
    /// bearer token: never copy it into a report.
    pub async fn kubeconfig_file(&self) -> Result<&std::path::Path, crate::kube::KubeError> {
        Ok(&self.kube_access().await?.path)
    }

    async fn kube_access(&self) -> Result<&KubeAccess, crate::kube::KubeError> {
        use crate::kube::{KubeClient, KubeError};
        use crate::model::lab::Kubernetes;
        self.kube
            .get_or_try_init(|| async {
                match &self.spec.lab.kubernetes {
                    Kubernetes::Kubeconfig { path, context } => Ok(KubeAccess {
                        client: KubeClient::from_kubeconfig_context(path, context.as_deref())
                            .await?,
                        path: path.clone(),
                        _private: None,
                    }),
                    Kubernetes::Omni => {
                        let omni = self.omni.as_ref().ok_or_else(|| KubeError::Obtain(
                            "this run has no Omni connection to ask for a kubeconfig; name one in the lab file's [kubernetes] kubeconfig".into(),
                        ))?;
                        let cluster = self.spec.template.cluster_name().ok_or_else(|| {
                            KubeError::Obtain("the template names no cluster".into())
                        })?;
                        let private = private_file(&self.spec.lab.state_dir, "kubeconfig-")?;
                        omni.kubeconfig(cluster, &private, SERVICE_ACCOUNT_USER)
                            .await
                            .map_err(|e| KubeError::Obtain(format!(
                                "omnictl kubeconfig -c {cluster} --service-account failed: {e}"
                            )))?;
                        let client = KubeClient::from_kubeconfig(&private).await?;
                        Ok(KubeAccess {
                            client,
                            path: private.to_path_buf(),
                            _private: Some(private),
                        })
                    }
                }
            })
            .await
    }
}

/// A new empty file only the owner can read (0600), in `dir` (created 0700 if missing),
/// removed when the returned path is dropped.
fn private_file(
    dir: &std::path::Path,
    prefix: &str,
) -> Result<tempfile::TempPath, crate::kube::KubeError> {
    let fail = |e: std::io::Error| {
        crate::kube::KubeError::Obtain(format!(
            "cannot create a private file in the state directory {}: {e}",
            dir.display()
        ))
    };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(fail)?;
    // tempfile creates the file 0600 on unix.
    let f = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(dir)
        .map_err(fail)?;
    Ok(f.into_temp_path())
}

/// What a running scenario gets: the lab, a way to record observations, and the run's
/// cancellation.
#[derive(Clone)]
pub struct Context {
    pub lab: Arc<Lab>,
    pub events: Emitter,
    pub cancel: Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Skip,
    Warn,
    Fail,
    /// The harness could not evaluate.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Skip => "skip",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub value: f64,
    pub unit: String,
}

/// What a scenario concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// One line.
    pub message: String,
    /// Facts observed, one per line.
    pub evidence: Vec<String>,
    /// What a person should do, from the plan's red flags and known failure modes.
    pub remediation: Option<String>,
    /// Problems in the user's inputs, each with file:line:col.
    pub findings: Vec<Finding>,
    pub metrics: BTreeMap<String, Metric>,
    /// Set by the runner.
    #[serde(with = "duration_secs")]
    pub duration: Duration,
}

impl Outcome {
    pub fn new(verdict: Verdict, message: impl Into<String>) -> Self {
        Outcome {
            verdict,
            message: message.into(),
            evidence: Vec::new(),
            remediation: None,
            findings: Vec::new(),
            metrics: BTreeMap::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn pass(message: impl Into<String>) -> Self {
        Self::new(Verdict::Pass, message)
    }

    pub fn skip(message: impl Into<String>) -> Self {
        Self::new(Verdict::Skip, message)
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Verdict::Error, message)
    }

    /// An outcome decided by findings: fail on any error, warn on any warning, else pass.
    /// `summary` describes what was checked ("3 documents, 2 machine sets").
    pub fn from_findings(mut findings: Vec<Finding>, summary: &str) -> Self {
        crate::source::sort_findings(&mut findings);
        let errors = crate::source::count(&findings, Severity::Error);
        let warnings = crate::source::count(&findings, Severity::Warning);
        let (verdict, message) = match (errors, warnings) {
            (0, 0) => (Verdict::Pass, summary.to_string()),
            (0, w) => (
                Verdict::Warn,
                format!(
                    "{w} warning(s): {}",
                    first_message(&findings, Severity::Warning)
                ),
            ),
            (e, _) => (
                Verdict::Fail,
                format!(
                    "{e} problem(s): {}",
                    first_message(&findings, Severity::Error)
                ),
            ),
        };
        let mut o = Outcome::new(verdict, message);
        o.remediation = findings
            .iter()
            .find(|f| f.severity >= Severity::Warning && !f.fix.is_empty())
            .map(|f| f.fix.clone());
        o.findings = findings;
        o
    }

    pub fn evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    pub fn remediation(mut self, hint: impl Into<String>) -> Self {
        self.remediation = Some(hint.into());
        self
    }

    pub fn metric(mut self, name: &str, value: f64, unit: &str) -> Self {
        self.metrics.insert(
            name.to_string(),
            Metric {
                value,
                unit: unit.to_string(),
            },
        );
        self
    }
}

/// A verdict's list of problems for its one-line message: all of them when there are at
/// most `shown`, else the first `shown` and how many more (the whole list belongs in the
/// evidence then — a 500-VM plan can have hundreds).
pub fn first_of(items: &[String], shown: usize) -> String {
    if items.len() <= shown {
        items.join("; ")
    } else {
        format!(
            "{}; … and {} more (each in the evidence)",
            items[..shown].join("; "),
            items.len() - shown
        )
    }
}

fn first_message(findings: &[Finding], sev: Severity) -> String {
    findings
        .iter()
        .find(|f| f.severity == sev)
        .map(|f| format!("{} ({})", f.message, f.rule))
        .unwrap_or_default()
}

pub(crate) mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Seconds as written by `serialize`; a negative or non-finite number is refused.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
