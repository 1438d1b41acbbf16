//! API errors as Kubernetes `Status` objects (reference §7): every error carries `code`
//! **and** `reason`, because kube-rs' `is_not_found()`/`is_conflict()` look at the reason.

use serde_json::{Value, json};

use super::types::Gvr;

/// A failed API call, rendered as a `Status` with the HTTP code `code`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 404 for a path that names no served resource.
    pub fn no_route() -> ApiError {
        ApiError::new(404, "NotFound", "the server could not find the requested resource")
            .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
    }

    pub fn not_found(gvr: &Gvr, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", gvr.qualified()),
        )
        .with_details(object_details(gvr, name))
    }

    pub fn already_exists(gvr: &Gvr, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", gvr.qualified()),
        )
        .with_details(object_details(gvr, name))
    }

    /// Stale `resourceVersion` on a write.
    pub fn conflict(gvr: &Gvr, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                gvr.qualified()
            ),
        )
        .with_details(object_details(gvr, name))
    }

    /// A failed delete precondition.
    pub fn precondition(gvr: &Gvr, name: &str, what: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {what}",
                gvr.qualified()
            ),
        )
        .with_details(object_details(gvr, name))
    }

    /// 422 with one cause, as validation failures are reported.
    pub fn invalid(kind: &str, name: &str, field: &str, message: &str) -> ApiError {
        let group_kind = kind.to_string();
        ApiError::new(
            422,
            "Invalid",
            format!("{group_kind} \"{name}\" is invalid: {field}: {message}"),
        )
        .with_details(json!({
            "name": name, "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        }))
    }

    pub fn method_not_allowed(what: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({what})"),
        )
    }

    pub fn unsupported_media_type(ct: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})"
            ),
        )
    }

    /// "too old resource version", sent in a watch stream as an ERROR event.
    pub fn expired(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn object_details(gvr: &Gvr, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": gvr.plural});
    if !gvr.group.is_empty() {
        d["group"] = json!(gvr.group);
    }
    d
}

/// The `Status` a successful immediate delete answers with.
pub fn deleted_status(gvr: &Gvr, name: &str, uid: &str) -> Value {
    let mut details = object_details(gvr, name);
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
