//! Reading FHIR R4 Bundles, single resources and bulk-export NDJSON lines.

use serde_json::Value;

use crate::error::{Error, Result};

/// Bundle types a loader accepts.
const BUNDLE_TYPES: &[&str] = &[
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
    "subscription-notification",
];

/// What identifies one version of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceMeta {
    /// `resourceType`.
    pub resource_type: String,
    /// `id`, if the resource has one.
    pub id: Option<String>,
    /// `meta.versionId`.
    pub version_id: Option<String>,
    /// `meta.lastUpdated` as written.
    pub last_updated: Option<String>,
}

impl ResourceMeta {
    /// Reads the identifying fields of a resource; refuses JSON that is not a resource.
    pub fn of(resource: &Value) -> Result<Self> {
        let object = resource
            .as_object()
            .ok_or_else(|| Error::Resource("a resource must be a JSON object".into()))?;
        let resource_type = object
            .get("resourceType")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Resource("the resource has no resourceType".into()))?;
        if !is_resource_type(resource_type) {
            return Err(Error::Resource(
                "resourceType is not a FHIR resource type name".into(),
            ));
        }
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let meta = object.get("meta");
        Ok(Self {
            resource_type: resource_type.to_string(),
            id: text(object.get("id")),
            version_id: text(meta.and_then(|m| m.get("versionId"))),
            last_updated: text(meta.and_then(|m| m.get("lastUpdated"))),
        })
    }
}

/// Whether a name looks like a FHIR resource type (`Patient`, `MedicationRequest`).
pub fn is_resource_type(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
}

/// One entry of a Bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleEntry {
    /// Position in the Bundle, from 1.
    pub position: usize,
    /// The resource, absent for a deletion.
    pub resource: Option<Value>,
    /// What identifies the resource (for a deletion, taken from `request.url`).
    pub meta: ResourceMeta,
    /// `fullUrl`.
    pub full_url: Option<String>,
    /// `request.method`, if the Bundle is a transaction or batch.
    pub method: Option<String>,
    /// Whether the entry deletes the resource.
    pub deleted: bool,
    /// Why the entry cannot be kept, when it cannot (the rest of the Bundle still loads).
    pub problem: Option<String>,
}

/// Reads every entry of a Bundle. An error means the document is not a Bundle at all; a bad
/// entry is returned with its [`BundleEntry::problem`] set.
pub fn read_bundle(bundle: &Value) -> Result<Vec<BundleEntry>> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(Error::Resource("the document is not a Bundle".into()));
    }
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Resource("the Bundle has no type".into()))?;
    if !BUNDLE_TYPES.contains(&kind) {
        return Err(Error::Resource(format!("unknown Bundle type `{kind}`")));
    }
    let entries = match bundle.get("entry") {
        None => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(Error::Resource("Bundle.entry must be a list".into())),
    };
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let position = i + 1;
        let full_url = entry
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_string);
        let request = entry.get("request");
        let method = request
            .and_then(|r| r.get("method"))
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase);
        let resource = entry.get("resource").filter(|r| !r.is_null()).cloned();
        let mut item = BundleEntry {
            position,
            resource: None,
            meta: ResourceMeta::default(),
            full_url,
            method: method.clone(),
            deleted: false,
            problem: None,
        };
        if method.as_deref() == Some("DELETE") {
            // `request.url` is `Type/id` (a conditional delete has a query and no id).
            let url = request
                .and_then(|r| r.get("url"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let target = url.split('?').next().unwrap_or("");
            let mut parts = target.trim_matches('/').rsplitn(2, '/');
            let id = parts.next().unwrap_or("");
            let ty = parts.next().unwrap_or("");
            let ty = ty.rsplit('/').next().unwrap_or(ty);
            if is_resource_type(ty) && !id.is_empty() && !url.contains('?') {
                item.deleted = true;
                item.meta = ResourceMeta {
                    resource_type: ty.to_string(),
                    id: Some(id.to_string()),
                    version_id: None,
                    last_updated: None,
                };
            } else {
                item.problem = Some("a DELETE entry needs request.url `Type/id`; conditional deletes are not supported".into());
            }
            out.push(item);
            continue;
        }
        match resource {
            Some(resource) => match ResourceMeta::of(&resource) {
                Ok(meta) => {
                    item.meta = meta;
                    item.resource = Some(resource);
                }
                Err(e) => item.problem = Some(e.to_string()),
            },
            None => item.problem = Some("the entry has no resource".into()),
        }
        out.push(item);
    }
    Ok(out)
}

/// Reads one line of bulk-export NDJSON as a resource.
pub fn read_ndjson_line(line: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        Error::Resource(format!(
            "not JSON (column {}: {})",
            e.column(),
            match e.classify() {
                serde_json::error::Category::Io => "read error",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "unexpected data",
                serde_json::error::Category::Eof => "the line ends too early",
            }
        ))
    })?;
    ResourceMeta::of(&value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transaction_with_delete_and_bad_entry() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "1",
                "meta": {"versionId": "2", "lastUpdated": "2024-01-01T00:00:00Z"}},
             "request": {"method": "PUT", "url": "Patient/1"}},
            {"request": {"method": "DELETE", "url": "Observation/9"}},
            {"resource": {"id": "x"}},
            {"request": {"method": "DELETE", "url": "Observation?code=1"}}
        ]});
        let entries = read_bundle(&bundle).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].meta.version_id.as_deref(), Some("2"));
        assert!(entries[1].deleted);
        assert_eq!(entries[1].meta.resource_type, "Observation");
        assert_eq!(entries[1].meta.id.as_deref(), Some("9"));
        assert!(entries[2].problem.is_some());
        assert!(entries[3].problem.is_some());
        assert!(read_bundle(&json!({"resourceType": "Patient"})).is_err());
        assert!(read_bundle(&json!({"resourceType": "Bundle", "type": "nonsense"})).is_err());
    }

    #[test]
    fn ndjson_lines() {
        assert!(read_ndjson_line(r#"{"resourceType":"Patient","id":"a"}"#).is_ok());
        let err = read_ndjson_line(r#"{"resourceType":"Patient","name":"Secret"#).unwrap_err();
        assert!(!err.to_string().contains("Secret"));
        assert!(read_ndjson_line(r#"{"id":"a"}"#).is_err());
    }
}
