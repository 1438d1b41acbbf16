//! Secrets named by the lab file (an environment variable or a file), read when a driver is
//! built and held as `SecretString`, whose `Debug` prints `[REDACTED]`. Never logged.

use secrecy::SecretString;

use crate::model::lab::SecretSource;

#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} from {source_desc}: {reason}")]
pub struct SecretError {
    pub what: &'static str,
    pub source_desc: String,
    pub reason: String,
}

/// Read `what` (e.g. "the Proxmox API token secret") from where the lab says it is.
/// Trailing newlines in files are dropped; an empty secret is an error.
pub fn read(what: &'static str, source: &SecretSource) -> Result<SecretString, SecretError> {
    let desc = source.to_string();
    let value = match source {
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
        }
        SecretSource::File(p) => std::fs::read_to_string(p).map_err(|e| e.to_string()),
    };
    let value = value.map_err(|reason| SecretError {
        what,
        source_desc: desc.clone(),
        reason,
    })?;
    let value = value.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(SecretError {
            what,
            source_desc: desc,
            reason: "it is empty".into(),
        });
    }
    Ok(SecretString::from(value))
}
