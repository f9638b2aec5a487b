//! `FormatV1`: the version number every persisted value carries.
//!
//! Snapshots and outcomes are stored by the control plane and read back by
//! later builds, so each carries `"version": 1`. A build refuses a version it
//! does not know instead of misreading it. When a format changes, its type
//! gets a `FormatV2` field and the reader of version 1 stays next to it.
//!
//! Deliberately does not migrate anything: there is only one version yet.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Version 1 of a persisted format: serializes as the integer `1` and refuses
/// to deserialize anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FormatV1;

impl FormatV1 {
    pub const NUMBER: u32 = 1;
}

impl fmt::Display for FormatV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Self::NUMBER)
    }
}

impl Serialize for FormatV1 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(Self::NUMBER)
    }
}

impl<'de> Deserialize<'de> for FormatV1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found = u64::deserialize(deserializer)?;
        if found == u64::from(Self::NUMBER) {
            Ok(Self)
        } else {
            Err(serde::de::Error::custom(format_args!(
                "unsupported format version {found}; this build reads version {}",
                Self::NUMBER
            )))
        }
    }
}

impl utoipa::PartialSchema for FormatV1 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .enum_values(Some([Self::NUMBER]))
            .description(Some("Version of this stored format."))
            .into()
    }
}

impl utoipa::ToSchema for FormatV1 {}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expected: Result<(), &str>) {
        let got = serde_json::from_str::<FormatV1>(json)
            .map(|_| ())
            .map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) => assert!(got.contains(want), "{json}: got {got:?}"),
            _ => panic!("{json}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn reads_only_version_one() {
        check("1", Ok(()));
        check(
            "2",
            Err("unsupported format version 2; this build reads version 1"),
        );
        check("0", Err("unsupported format version 0"));
        check("\"1\"", Err("invalid type"));
        assert_eq!(serde_json::to_string(&FormatV1).unwrap(), "1");
    }
}
