//! Identifier newtypes. Strings become ids once, at the boundary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("invalid {kind}: {reason}")]
    Invalid { kind: &'static str, reason: String },
}

/// A UUIDv7 id newtype: ids sort by creation time, parse and print as
/// UUIDs, and read as a `String` of format `uuid` in the API document.
/// `$kind` names it in parse errors.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            ::serde::Serialize,
            ::serde::Deserialize,
            ::utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(::uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(::uuid::Uuid::now_v7())
            }

            pub fn from_uuid(uuid: ::uuid::Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> ::uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self).map_err(|err| $crate::IdError::Invalid {
                    kind: $kind,
                    reason: err.to_string(),
                })
            }
        }
    };
}

pub(crate) use uuid_id;

/// A job id: a UUIDv7, so ids sort by creation time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|err| IdError::Invalid {
                kind: "job id",
                reason: err.to_string(),
            })
    }
}

/// A workspace id. Every row and every query carries one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct WorkspaceId(Uuid);

impl WorkspaceId {
    /// The workspace that exists from the first start.
    pub const DEFAULT: WorkspaceId = WorkspaceId(Uuid::from_u128(1));

    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for WorkspaceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for WorkspaceId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|err| IdError::Invalid {
                kind: "workspace id",
                reason: err.to_string(),
            })
    }
}

/// Checks a short name made of `[A-Za-z0-9._-]`.
fn check_name(kind: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() || value.len() > max {
        return Err(IdError::Invalid {
            kind,
            reason: format!("must be 1 to {max} characters long"),
        });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(IdError::Invalid {
            kind,
            reason: format!(
                "character {bad:?} is not allowed (use letters, digits, '.', '_', '-', ':')"
            ),
        });
    }
    Ok(())
}

macro_rules! name_newtype {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_name($kind, &value, $max)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

name_newtype!(
    /// A queue name; jobs are claimed from the queues a worker serves.
    QueueName,
    "queue name",
    64
);

name_newtype!(
    /// A worker's self-chosen identity, reported on every protocol call.
    WorkerId,
    "worker id",
    128
);

impl Default for QueueName {
    fn default() -> Self {
        Self("default".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let check =
            |input: &str, ok: bool| assert_eq!(QueueName::new(input).is_ok(), ok, "{input:?}");
        check("default", true);
        check("emails.high-1", true);
        check("", false);
        check("has space", false);
        check(&"x".repeat(65), false);
    }

    #[test]
    fn job_ids_sort_by_creation() {
        let a = JobId::new();
        let b = JobId::new();
        assert!(a < b);
    }
}
