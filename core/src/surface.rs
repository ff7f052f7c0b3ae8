//! The API surface as data: every error kind (with its code, C status, exit code and doc),
//! every progress event type (with its fields), every registry setting, cache option and pull
//! option, the gc policy and the shapes of the cache's reports, as one JSON document. It is
//! committed as `core/api-surface.json` (a test fails when it
//! drifts), and each front door has a parity test that fails when it lacks an item: the C
//! header and Go (`ffi/tests/`, `bindings/go`), the CLI (`core/tests/cli.rs`), Python and
//! Node (their own test folders).

use serde_json::{Value, json};

use crate::cache::{
    CacheOptions, CachedImage, CachedLayer, DiskUsage, GcPolicy, GcReport, ImageCheck, ImageUsage,
    LayerCheck, Problem, ProblemKind, RemovedImage, ReportSchema, VerifyReport,
};
use crate::error::ErrorKind;
use crate::offline::SaveReport;
use crate::progress::{FieldSchema, PullProgress};
use crate::pull::{PullOptions, RemoteImage, RemoteLayer, RepairFailure, RepairReport};
use crate::settings::RegistryConfig;
use crate::unpack::UnpackReport;

/// The API surface document (see the module docs), pretty-printed with a trailing newline.
///
/// ```
/// let surface: serde_json::Value = serde_json::from_str(&microsandbox_image::surface::api_surface_json()).unwrap();
/// assert!(surface["errorKinds"].as_array().unwrap().iter().any(|k| k["code"] == "NOT_CACHED"));
/// ```
pub fn api_surface_json() -> String {
    let doc = api_surface();
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// The API surface document as a JSON value.
pub fn api_surface() -> Value {
    json!({
        "errorKinds": error_kinds(),
        "events": events(),
        "cacheOptions": {
            "defaults": serde_json::to_value(CacheOptions::default()).unwrap_or(Value::Null),
        },
        "registryConfig": {
            "defaults": serde_json::to_value(RegistryConfig::default()).unwrap_or(Value::Null),
        },
        "pullOptions": {
            "defaults": serde_json::to_value(PullOptions::default()).unwrap_or(Value::Null),
            "aliases": PullOptions::ALIASES
                .iter()
                .map(|(alias, key)| ((*alias).to_owned(), Value::from(*key)))
                .collect::<serde_json::Map<String, Value>>(),
        },
        "gcPolicy": {
            "defaults": serde_json::to_value(GcPolicy::default()).unwrap_or(Value::Null),
        },
        "cacheReports": cache_reports(),
        "problemKinds": ProblemKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>(),
    })
}

/// The report types of the cache's life-cycle calls, each after the reports it refers to.
pub const CACHE_REPORTS: &[ReportSchema] = &[
    CachedImage::SCHEMA,
    CachedLayer::SCHEMA,
    ImageUsage::SCHEMA,
    DiskUsage::SCHEMA,
    RemovedImage::SCHEMA,
    GcReport::SCHEMA,
    Problem::SCHEMA,
    LayerCheck::SCHEMA,
    ImageCheck::SCHEMA,
    VerifyReport::SCHEMA,
    RepairFailure::SCHEMA,
    RepairReport::SCHEMA,
    RemoteLayer::SCHEMA,
    RemoteImage::SCHEMA,
    UnpackReport::SCHEMA,
    SaveReport::SCHEMA,
];

fn cache_reports() -> Vec<Value> {
    CACHE_REPORTS
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "doc": r.doc,
                "extends": r.extends,
                "fields": fields(r.fields),
            })
        })
        .collect()
}

fn error_kinds() -> Vec<Value> {
    ErrorKind::ALL
        .iter()
        .map(|k| {
            json!({
                "name": k.name(),
                "code": k.code(),
                "status": k.status(),
                "exitCode": k.exit_code(),
                "doc": k.doc(),
            })
        })
        .collect()
}

fn events() -> Vec<Value> {
    PullProgress::SCHEMA
        .iter()
        .map(|e| {
            json!({
                "type": e.type_tag(),
                "name": e.variant,
                "milestone": e.milestone,
                "doc": e.doc,
                "fields": fields(e.fields),
            })
        })
        .collect()
}

/// Fields of an event or a report: JSON name, Rust name, schema type, doc.
fn fields(fields: &[FieldSchema]) -> Vec<Value> {
    fields
        .iter()
        .map(|f| {
            json!({
                "name": f.json_name(),
                "rustName": f.name,
                "type": f.ty,
                "doc": f.doc,
            })
        })
        .collect()
}
