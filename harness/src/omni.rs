//! The Omni driver: runs the configured `omnictl` and parses what it prints.
//!
//! - Auth by service-account key only: the key is passed as `OMNI_SERVICE_ACCOUNT_KEY` with
//!   `OMNI_ENDPOINT`, `SIDERO_SERVICE_ACCOUNT_KEY` is removed from the child's environment (it
//!   wins by presence), and `OMNICONFIG` points at a private file so omnictl neither reads a
//!   user's contexts nor starts a browser login (`shared/reference/omni.md` §2).
//! - `-o json` output is a stream of concatenated pretty-printed objects (§3.2), parsed
//!   incrementally, also for watches (`-w`, §3.4), where each object carries `"event"`.
//! - Exit status and `Error: …` on stderr become [`OmniError`]s a person can act on (§4).
//! - The key is never logged or put in an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::model::lab::Omni as OmniLab;

/// Resource metadata as omnictl prints it (`-o json`: keys sorted, empty owner `null`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Metadata {
    pub namespace: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub version: Option<serde_json::Value>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub annotations: BTreeMap<String, serde_json::Value>,
}

impl Metadata {
    /// A label's value as text (`null` → empty; numbers and booleans as written).
    pub fn label(&self, key: &str) -> Option<String> {
        self.labels.get(key).map(|v| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// One Omni resource.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Resource {
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Created,
    Updated,
    Destroyed,
}

/// An item of `omnictl get -w -o json`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WatchEvent {
    pub event: EventKind,
    #[serde(flatten)]
    pub resource: Resource,
}

#[derive(Debug, thiserror::Error)]
pub enum OmniError {
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    #[error(
        "cannot run omnictl ({path}): {reason}; set omni.omnictl in the lab file to the omnictl binary"
    )]
    Spawn { path: String, reason: String },
    #[error(
        "Omni rejected the service-account key: {message} — the key has expired or was revoked; create a new one (`omnictl serviceaccount create` or the Omni UI) and update {key_source}"
    )]
    Unauthenticated { message: String, key_source: String },
    #[error("Omni has no such resource: {message}")]
    NotFound { message: String },
    #[error("omnictl does not know this resource type: {message}")]
    NotRegistered { message: String },
    #[error("Omni refused it: {message}")]
    Invalid { message: String },
    #[error("`omnictl {command}` failed (exit {code}): {message}")]
    Failed {
        command: String,
        code: i32,
        message: String,
    },
    #[error("`omnictl {command}` did not finish within {secs}s")]
    Timeout { command: String, secs: u64 },
    #[error("cannot parse what `omnictl {command}` printed: {reason}")]
    Parse { command: String, reason: String },
}

impl OmniError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, OmniError::NotFound { .. })
    }
}

/// Map omnictl's exit and stderr to an error (omni.md §4).
pub fn classify(command: &str, code: i32, stderr: &str, key_source: &str) -> OmniError {
    // From the `Error: ` line to the end: go-multierror continues on `\t* …` lines.
    let lines: Vec<&str> = stderr.lines().collect();
    let from = lines
        .iter()
        .position(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| {
            lines
                .iter()
                .rposition(|l| !l.trim().is_empty())
                .unwrap_or(0)
        });
    let message = lines
        .get(from..)
        .unwrap_or_default()
        .iter()
        .map(|l| l.trim().trim_start_matches("Error: "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if message.contains("code = Unauthenticated") {
        OmniError::Unauthenticated {
            message,
            key_source: key_source.into(),
        }
    } else if message.contains("code = NotFound") {
        OmniError::NotFound { message }
    } else if message.contains("is not registered") {
        OmniError::NotRegistered { message }
    } else if message.contains("code = InvalidArgument") {
        OmniError::Invalid { message }
    } else {
        OmniError::Failed {
            command: command.into(),
            code,
            message: if message.is_empty() {
                "no error text".into()
            } else {
                message
            },
        }
    }
}

/// Incremental parser of concatenated JSON objects (omnictl's `-o json`).
#[derive(Default)]
pub struct JsonStream {
    buf: Vec<u8>,
}

impl JsonStream {
    /// Feed bytes; return every complete value now available.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut it =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        loop {
            match it.next() {
                Some(Ok(v)) => {
                    out.push(v);
                    consumed = it.byte_offset();
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e),
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        Ok(out)
    }

    /// At end of input: anything left but whitespace is a truncated object.
    pub fn finish(&self) -> Result<(), String> {
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(format!(
                "output ends inside an object: {:?}",
                String::from_utf8_lossy(&self.buf)
            ))
        }
    }
}

/// Parse a whole `-o json` output.
pub fn parse_json(text: &str) -> Result<Vec<Resource>, String> {
    let mut s = JsonStream::default();
    let values = s.push(text.as_bytes()).map_err(|e| e.to_string())?;
    s.finish()?;
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        .collect()
}

/// Parse a whole `-o yaml` output (documents separated by `---`).
pub fn parse_yaml(text: &str) -> Result<Vec<Resource>, String> {
    let values: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(text).map_err(|e| e.to_string())?;
    values
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        .collect()
}

pub struct OmniClient {
    omnictl: PathBuf,
    endpoint: String,
    key: SecretString,
    key_source: String,
    /// Private directory holding the OMNICONFIG omnictl may create.
    config_dir: tempfile::TempDir,
    timeout: Duration,
}

impl std::fmt::Debug for OmniClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmniClient")
            .field("omnictl", &self.omnictl)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl OmniClient {
    pub fn new(lab: &OmniLab, timeout: Duration) -> Result<Self, OmniError> {
        let key = crate::secret::read("the Omni service-account key", &lab.service_account_key)?;
        let config_dir = tempfile::Builder::new()
            .prefix("clusterproof-omniconfig-")
            .tempdir()
            .map_err(|e| OmniError::Spawn {
                path: "a private OMNICONFIG directory".into(),
                reason: e.to_string(),
            })?;
        Ok(OmniClient {
            omnictl: lab.omnictl.clone(),
            endpoint: lab.endpoint.clone(),
            key,
            key_source: lab.service_account_key.to_string(),
            config_dir,
            timeout,
        })
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.omnictl);
        c.args(args)
            .env_remove("SIDERO_SERVICE_ACCOUNT_KEY")
            .env("OMNI_SERVICE_ACCOUNT_KEY", self.key.expose_secret())
            .env("OMNI_ENDPOINT", &self.endpoint)
            .env("OMNICONFIG", self.config_dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Run omnictl to completion; stdout on success.
    pub async fn run(&self, args: &[&str]) -> Result<String, OmniError> {
        let command = args.join(" ");
        tracing::debug!(%command, "omnictl");
        let child = self.command(args).spawn().map_err(|e| OmniError::Spawn {
            path: self.omnictl.display().to_string(),
            reason: e.to_string(),
        })?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| OmniError::Spawn {
                path: self.omnictl.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(_) => {
                return Err(OmniError::Timeout {
                    command,
                    secs: self.timeout.as_secs(),
                });
            }
        };
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(classify(
                &command,
                out.status.code().unwrap_or(-1),
                &String::from_utf8_lossy(&out.stderr),
                &self.key_source,
            ))
        }
    }

    /// `omnictl get TYPE [ID] -o json`.
    pub async fn get(&self, kind: &str, id: Option<&str>) -> Result<Vec<Resource>, OmniError> {
        let mut args = vec!["get", kind];
        args.extend(id);
        args.extend(["-o", "json"]);
        let out = self.run(&args).await?;
        parse_json(&out).map_err(|reason| OmniError::Parse {
            command: args.join(" "),
            reason,
        })
    }

    /// One resource, or `None` when Omni says it does not exist.
    pub async fn get_one(&self, kind: &str, id: &str) -> Result<Option<Resource>, OmniError> {
        match self.get(kind, Some(id)).await {
            Ok(mut v) => Ok(v.pop()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `omnictl apply -f FILE`.
    pub async fn apply(&self, file: &Path) -> Result<(), OmniError> {
        let f = file.display().to_string();
        self.run(&["apply", "-f", &f]).await.map(|_| ())
    }

    /// `omnictl cluster template <verb> -f FILE [extra...]`: stdout.
    pub async fn template(
        &self,
        verb: &str,
        file: &Path,
        extra: &[&str],
    ) -> Result<String, OmniError> {
        let f = file.display().to_string();
        let mut args = vec!["cluster", "template", verb, "-f", &f];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// A service-account kubeconfig for `cluster`, written to `path` (never to stdout: omni.md §8).
    pub async fn kubeconfig(
        &self,
        cluster: &str,
        path: &Path,
        user: &str,
    ) -> Result<(), OmniError> {
        let p = path.display().to_string();
        self.run(&[
            "kubeconfig",
            &p,
            "-c",
            cluster,
            "--service-account",
            "--user",
            user,
            "--merge=false",
            "--force",
        ])
        .await
        .map(|_| ())
    }

    /// `omnictl get TYPE -w -o json`: events as they happen (existing resources first, as
    /// `created`). The child is killed when the [`Watch`] is dropped.
    pub fn watch(&self, kind: &str) -> Result<Watch, OmniError> {
        let args = ["get", kind, "-w", "-o", "json"];
        let mut child = self.command(&args).spawn().map_err(|e| OmniError::Spawn {
            path: self.omnictl.display().to_string(),
            reason: e.to_string(),
        })?;
        let stdout = child.stdout.take().ok_or_else(|| OmniError::Spawn {
            path: self.omnictl.display().to_string(),
            reason: "no stdout".into(),
        })?;
        Ok(Watch {
            child,
            stdout,
            stream: JsonStream::default(),
            pending: std::collections::VecDeque::new(),
            command: args.join(" "),
            key_source: self.key_source.clone(),
        })
    }
}

/// A running `omnictl get -w`.
pub struct Watch {
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    stream: JsonStream,
    pending: std::collections::VecDeque<WatchEvent>,
    command: String,
    key_source: String,
}

impl Watch {
    /// The next event; `None` when omnictl ended normally.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, OmniError>> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            let n = match self.stdout.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    return Some(Err(OmniError::Parse {
                        command: self.command.clone(),
                        reason: e.to_string(),
                    }));
                }
            };
            if n == 0 {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr).await;
                }
                let status = self.child.wait().await.ok();
                return match status {
                    Some(s) if s.success() => None,
                    s => Some(Err(classify(
                        &self.command,
                        s.and_then(|s| s.code()).unwrap_or(-1),
                        &stderr,
                        &self.key_source,
                    ))),
                };
            }
            match self.stream.push(&buf[..n]) {
                Ok(values) => {
                    for v in values {
                        match serde_json::from_value::<WatchEvent>(v) {
                            Ok(e) => self.pending.push_back(e),
                            Err(e) => {
                                return Some(Err(OmniError::Parse {
                                    command: self.command.clone(),
                                    reason: e.to_string(),
                                }));
                            }
                        }
                    }
                }
                Err(e) => {
                    return Some(Err(OmniError::Parse {
                        command: self.command.clone(),
                        reason: e.to_string(),
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like omnictl's `-o json` (omni.md §3.2): sorted keys, 4-space indent, null owner,
    /// numeric label values, two objects back to back.
    const TWO: &str = r#"{
    "metadata": {
        "created": "2026-01-23T12:06:30Z",
        "id": "talos-a",
        "labels": {
            "omni.sidero.dev/cores": 4,
            "omni.sidero.dev/connected": null
        },
        "namespace": "default",
        "owner": "ClusterStatusController",
        "phase": "running",
        "type": "ClusterStatuses.omni.sidero.dev",
        "updated": "2026-01-23T12:06:30Z",
        "version": 57
    },
    "spec": {
        "available": true,
        "phase": 3
    }
}
{
    "metadata": {
        "id": "proxmox-cp",
        "namespace": "default",
        "owner": null,
        "phase": "running",
        "type": "MachineClasses.omni.sidero.dev",
        "version": 1
    },
    "spec": {
        "autoprovision": {
            "providerdata": "cores: 4\nstorage_selector: name == \"a\" \u0026\u0026 true\n"
        }
    }
}
"#;

    #[test]
    fn concatenated_json_objects_parse_in_any_chunking() {
        let all = parse_json(TWO).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].metadata.label("omni.sidero.dev/cores").as_deref(),
            Some("4")
        );
        assert_eq!(
            all[0]
                .metadata
                .label("omni.sidero.dev/connected")
                .as_deref(),
            Some("")
        );
        assert_eq!(all[1].metadata.owner, None);
        assert!(
            all[1].spec["autoprovision"]["providerdata"]
                .as_str()
                .unwrap()
                .contains("&&")
        );
        // Byte by byte, as a watch would receive it.
        let mut s = JsonStream::default();
        let mut n = 0;
        for b in TWO.as_bytes() {
            n += s.push(std::slice::from_ref(b)).unwrap().len();
        }
        assert_eq!(n, 2);
        assert!(s.finish().is_ok());
        assert!(
            parse_json(&TWO[..TWO.len() - 10]).is_err(),
            "a truncated stream is an error"
        );
    }

    #[test]
    fn yaml_output_parses_too() {
        let yaml = "metadata:\n    namespace: default\n    type: Clusters.omni.sidero.dev\n    id: talos-a\n    version: 3\n    owner:\n    phase: running\nspec:\n    kubernetesversion: 1.34.2\n---\nmetadata:\n    namespace: default\n    type: Clusters.omni.sidero.dev\n    id: talos-b\n    version: 1\n    owner:\n    phase: running\nspec:\n    kubernetesversion: 1.34.2\n";
        let r = parse_yaml(yaml).unwrap();
        assert_eq!(
            r.iter().map(|r| r.metadata.id.as_str()).collect::<Vec<_>>(),
            ["talos-a", "talos-b"]
        );
    }

    #[test]
    fn watch_events_carry_their_kind() {
        let e: WatchEvent = serde_json::from_str(r#"{"event":"updated","metadata":{"namespace":"default","type":"Links.omni.sidero.dev","id":"x"},"spec":{"connected":true}}"#).unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.resource.spec["connected"], true);
    }

    #[test]
    fn errors_are_classified_from_stderr() {
        let e = classify(
            "get clusters",
            1,
            "Error: rpc error: code = Unauthenticated desc = invalid signature\n",
            "environment variable OMNI_SERVICE_ACCOUNT_KEY",
        );
        assert!(
            e.to_string().contains("expired or was revoked")
                && e.to_string().contains("OMNI_SERVICE_ACCOUNT_KEY"),
            "{e}"
        );
        let multi = classify(
            "cluster template validate",
            1,
            "Error: 1 error occurred:\n\t* template should contain 1 controlplane, got 2\n\n",
            "",
        );
        assert!(
            multi
                .to_string()
                .contains("1 error occurred: * template should contain 1 controlplane, got 2"),
            "{multi}"
        );
        assert!(classify("get", 1, "Error: rpc error: code = NotFound desc = resource ClusterStatuses.omni.sidero.dev(default/foo@undefined) doesn't exist", "").is_not_found());
        assert!(matches!(
            classify(
                "get foo",
                1,
                "Error: resource \"foo\" is not registered",
                ""
            ),
            OmniError::NotRegistered { .. }
        ));
        assert!(matches!(
            classify(
                "apply",
                1,
                "Error: rpc error: code = InvalidArgument desc = failed to validate: providerID can not be empty",
                ""
            ),
            OmniError::Invalid { .. }
        ));
        match classify("x", 2, "", "") {
            OmniError::Failed { code, message, .. } => {
                assert_eq!((code, message.as_str()), (2, "no error text"))
            }
            other => panic!("{other:?}"),
        }
    }
}
