//! The Chainguard API's JSON, read tolerantly: every field optional,
//! unknown fields ignored, `sync_config` snake_case and the rest lowerCamelCase, 64-bit
//! integers as strings (or, from some servers, numbers).

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Repo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub catalog_tier: String,
    #[serde(rename = "sync_config", skip_serializing_if = "Option::is_none")]
    pub sync_config: Option<SyncConfig>,
    #[serde(skip_serializing)]
    pub active_tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncConfig {
    pub source: String,
    #[serde(skip_serializing)]
    pub expiration: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Tag {
    pub id: String,
    pub name: String,
    pub digest: String,
}

/// `{"items": [...]}`; an empty list is how v1 says "not found".
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items { items: vec![] }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Entitlements {
    pub plan: String,
    pub active_images: Vec<EntitledImage>,
    /// -1 means no maximum.
    #[serde(deserialize_with = "int64")]
    pub max_total_images: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EntitledImage {
    pub id: String,
    pub name: String,
    pub catalog_tier: String,
}

/// The gateway's error body: a `google.rpc.Status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RpcStatus {
    pub code: i32,
    pub message: String,
}

/// What the STS exchange answers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Exchanged {
    pub token: String,
    pub expiry: String,
}

/// A 64-bit integer as proto3 JSON writes it (a string), or as a number.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        I(i64),
        Null(()),
    }
    Ok(match N::deserialize(d)? {
        N::S(s) => s.trim().parse().ok(),
        N::I(i) => Some(i),
        N::Null(()) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_repo_and_ignores_what_it_does_not_know() {
        let r: Repo = serde_json::from_str(
            r#"{"id":"ae2a22d98354389440591848465119d347e1baa5/783b47e712ad54f5","name":"redis",
                "catalogTier":"APPLICATION","bundles":[],"readme":"","newField":{"x":1},
                "sync_config":{"source":"redis","uniqueTags":false,"expiration":"2026-02-18T17:05:09.067Z","syncApks":true},
                "aliases":[],"createTime":"2026-02-06T17:30:00.000Z","activeTags":["latest","latest-dev"]}"#,
        )
        .unwrap();
        assert_eq!(r.name, "redis");
        assert_eq!(r.sync_config.unwrap().source, "redis");
        assert_eq!(r.active_tags, ["latest", "latest-dev"]);
        let empty: Repo = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Repo::default());
    }

    #[test]
    fn a_create_body_is_name_and_snake_case_sync_config_only() {
        let body = serde_json::to_value(Repo {
            name: "redis".into(),
            sync_config: Some(SyncConfig {
                source: "redis".into(),
                ..SyncConfig::default()
            }),
            ..Repo::default()
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"name": "redis", "sync_config": {"source": "redis"}})
        );
    }

    #[test]
    fn int64_reads_strings_numbers_and_absence() {
        for (json, want) in [
            (r#"{"maxTotalImages":"-1"}"#, Some(-1)),
            (r#"{"maxTotalImages":2500}"#, Some(2500)),
            (r#"{"maxTotalImages":null}"#, None),
            (r#"{}"#, None),
        ] {
            let e: Entitlements = serde_json::from_str(json).unwrap();
            assert_eq!(e.max_total_images, want, "{json}");
        }
    }
}
