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

/// A check. One module per scenario in the `scenarios` crate; the doc comment of the module
/// names the plan line it proves.
pub trait Scenario: Send + Sync {
    /// Stable id, `phase::name`, e.g. `preflight::template`.
    fn id(&self) -> &'static str;
    fn phase(&self) -> Phase;
    /// The line of the deployment plan this scenario proves.
    fn proves(&self) -> &'static str;
    fn needs(&self) -> &'static [Need];
    /// Scenarios of the same phase that must finish, and pass, before this one starts
    /// (provisioning steps are ordered). Default: none — it runs concurrently with the others.
    fn after(&self) -> &'static [&'static str] {
        &[]
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome>;
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
    /// Where provisioning writes its files (the kubeconfig): the run's report directory.
    pub workdir: std::path::PathBuf,
    /// Whether this run may change the lab (provisioning, chaos): `--yes`, or the built-in twin.
    pub allow_changes: bool,
    kube: tokio::sync::OnceCell<crate::kube::KubeClient>,
}

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
    pub workdir: std::path::PathBuf,
    pub allow_changes: bool,
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
            workdir: std::env::temp_dir(),
            allow_changes: false,
            kube: tokio::sync::OnceCell::new(),
        }
    }

    /// Build the drivers the scenarios need. Nothing is sent until a scenario asks; this
    /// fails only when the configuration itself is unusable (missing secret, bad CA file).
    pub fn connect(spec: LabSpec, opts: ConnectOptions) -> Result<Self, ConnectError> {
        let mut lab = Lab::offline(spec);
        lab.workdir = opts.workdir;
        lab.allow_changes = opts.allow_changes;
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
        if opts.needs.contains(&Need::Omni) {
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
            // Obtained during provisioning (or from an earlier run's kubeconfig): see `kube()`.
            Need::Kube => self.omni.is_some() || self.kubeconfig_path().is_file(),
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

    /// Where the cluster's kubeconfig is written (`provision::kubeconfig`) and read.
    pub fn kubeconfig_path(&self) -> std::path::PathBuf {
        self.workdir.join("kubeconfig")
    }

    /// The Kubernetes client, built from [`Lab::kubeconfig_path`] on first use.
    pub async fn kube(&self) -> Result<&crate::kube::KubeClient, crate::kube::KubeError> {
        let path = self.kubeconfig_path();
        self.kube
            .get_or_try_init(
                || async move { crate::kube::KubeClient::from_kubeconfig(&path).await },
            )
            .await
    }
}

/// What a running scenario gets: the lab and a way to record observations.
pub struct Context {
    pub lab: Arc<Lab>,
    pub events: Emitter,
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
