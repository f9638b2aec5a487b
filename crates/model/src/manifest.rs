//! The evidence manifest: what one finished attempt of a job was and left
//! behind (the job spec, engine, worker, timings per step, final URL,
//! status or error, every artifact with its size and SHA-256), written by
//! the control plane when it applies the attempt's completion or failure,
//! stored as a blob of its own and indexed as the artifact
//! `manifest-<attempt>.json`.
//!
//! Owns the manifest's shape and its canonical bytes: JSON with object
//! keys sorted and no insignificant whitespace, so the same manifest always
//! has the same SHA-256 and anyone can check it. Not where it is stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    ArtifactName, ArtifactRef, JobError, JobId, JobResult, JobSpec, JobState, QueueName, WorkerId,
    WorkspaceId,
};

/// The manifest format this code writes; a reader refuses others.
pub const MANIFEST_VERSION: u32 = 1;

/// Names starting with this are the control plane's (manifests); a worker
/// may not upload one.
pub const MANIFEST_NAME_PREFIX: &str = "manifest-";

/// One finished attempt of a job, as evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceManifest {
    /// Always 1 for this format.
    #[schema(minimum = 1, maximum = 1)]
    pub version: u32,
    pub job_id: JobId,
    pub workspace_id: WorkspaceId,
    #[schema(value_type = String)]
    pub queue: QueueName,
    #[schema(format = "uint32")]
    pub attempt: u32,
    /// The worker that ran the attempt, as the server binds it to its key.
    #[schema(value_type = String)]
    pub worker_id: WorkerId,
    /// What ran: the engine, the steps and the timeout.
    pub spec: JobSpec,
    pub labels: BTreeMap<String, String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub outcome: ManifestOutcome,
    /// What the attempt uploaded, by name.
    pub artifacts: Vec<ArtifactRef>,
}

/// How the attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum ManifestOutcome {
    /// The result holds the HTTP status, the final URL and the timings of
    /// every step.
    Succeeded { result: JobResult },
    /// `next` is `retrying` or `dead`.
    Failed { error: JobError, next: JobState },
}

impl EvidenceManifest {
    /// The name the manifest of `attempt` is indexed under.
    pub fn artifact_name(attempt: u32) -> ArtifactName {
        ArtifactName::new(format!("{MANIFEST_NAME_PREFIX}{attempt}.json"))
            .expect("manifest names are valid artifact names")
    }

    /// Whether `name` is a manifest's (reserved for the control plane).
    pub fn is_manifest_name(name: &ArtifactName) -> bool {
        name.as_str().starts_with(MANIFEST_NAME_PREFIX)
    }

    /// The manifest's canonical bytes, whose SHA-256 is its address.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("a manifest always serializes");
        canonical_json(&value).into_bytes()
    }
}

/// `value` as canonical JSON: object keys sorted by their UTF-8 bytes, no
/// whitespace, strings escaped as serde_json escapes them, numbers as
/// serde_json writes them. Written out here rather than relying on the map
/// order of `serde_json::Value`, which a cargo feature can change.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).expect("strings serialize"));
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalars serialize")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let check = |input: &str, expected: &str| {
            let value: Value = serde_json::from_str(input).unwrap();
            assert_eq!(canonical_json(&value), expected, "{input}");
        };
        check(
            r#"{"b": 1, "a": [true, null, "x"]}"#,
            r#"{"a":[true,null,"x"],"b":1}"#,
        );
        check(r#"{"z": {"y": 1, "x": 2}}"#, r#"{"z":{"x":2,"y":1}}"#);
        check(r#""line\nbreak \"quoted\"""#, r#""line\nbreak \"quoted\"""#);
        check(r#"{"é": 1, "e": 2, "E": 3}"#, r#"{"E":3,"e":2,"é":1}"#);
        check("[]", "[]");
        check("{}", "{}");
    }

    #[test]
    fn manifest_names_are_reserved_per_attempt() {
        assert_eq!(
            EvidenceManifest::artifact_name(3).as_str(),
            "manifest-3.json"
        );
        assert!(EvidenceManifest::is_manifest_name(
            &EvidenceManifest::artifact_name(1)
        ));
        assert!(!EvidenceManifest::is_manifest_name(
            &ArtifactName::new("page.html").unwrap()
        ));
    }
}
