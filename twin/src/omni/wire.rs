//! The private protocol between the `omnictl-twin` shim and the twin's Omni endpoint:
//! one `POST /v1/omnictl` with a JSON [`Request`], answered by a stream of newline-delimited
//! JSON [`Frame`]s (stdout and stderr text as `omnictl` would print it, then the exit code).
//! Watches keep streaming until the client disconnects. The service-account key never
//! travels; only the identity it names does.

use serde::{Deserialize, Serialize};

pub const PATH: &str = "/v1/omnictl";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    /// `omnictl`'s arguments, without the program name.
    pub args: Vec<String>,
    /// The shim's working directory (relative `-f` paths and patch files resolve from it).
    pub cwd: String,
    /// The `name` of the service-account key.
    pub identity: String,
    /// Contents of the files `-f` named, read by the shim.
    #[serde(default)]
    pub files: Vec<FileArg>,
    /// An error the shim found locally that `omnictl` reports only after authenticating
    /// (the kubeconfig path checks, omni.md §8).
    #[serde(default)]
    pub local_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileArg {
    /// The path as `omnictl` prints it in messages.
    pub path: String,
    /// Absolute path (templates resolve patch files from its directory).
    pub abs: String,
    pub content: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Frame {
    Stdout(String),
    Stderr(String),
    /// Kubeconfig content for the shim to write (`omnictl kubeconfig`).
    Kubeconfig(String),
    Exit(i32),
}
