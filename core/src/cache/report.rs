//! The cache's reports as data: `cache_report!` declares each report struct (`CachedImage`,
//! `GcReport`, …) once and derives its camelCase serde form and its [`ReportSchema`], from
//! which the API surface document describes the shapes the front doors return (Python's
//! classes, Node's interfaces, Go's structs are generated from or checked against it).

use crate::progress::{FieldSchema, SchemaType};

/// One report type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSchema {
    /// The type's name (`"CachedImage"`).
    pub name: &'static str,
    /// Its one-line description.
    pub doc: &'static str,
    /// The report whose fields it includes first (serde `flatten`), if any.
    pub extends: Option<&'static str>,
    /// Its own fields, in declaration order (the JSON form has the `extends` type's fields
    /// too). A field's type is a [`SchemaType`] name (`"string"`, `"digest"`, `"u64"`,
    /// `"bool"`), another report's name, or either followed by `[]` for a list.
    pub fields: &'static [FieldSchema],
}

impl SchemaType for Vec<String> {
    const NAME: &'static str = "string[]";
}
impl SchemaType for Vec<crate::digest::Digest> {
    const NAME: &'static str = "digest[]";
}

/// Declares a report struct: its public fields become its schema; a first field marked
/// `#[flatten]` is serialised inline (serde `flatten`) and becomes the schema's `extends`; last
/// fields marked `#[skip]` are crate-private bookkeeping, neither serialised nor described.
macro_rules! cache_report {
    (@extends) => { None };
    (@extends $base:ty) => { Some(stringify!($base)) };
    ($(#[doc = $doc:literal])+ $(#[derive($($derive:path),*)])? pub struct $name:ident {
        $(#[flatten] $(#[doc = $bdoc:literal])+ pub $base_field:ident: $base:ty,)?
        $($(#[doc = $fdoc:literal])+ pub $field:ident: $ty:ty,)*
        $(#[skip] $(#[doc = $sdoc:literal])+ pub(crate) $skip:ident: $sty:ty,)*
    }) => {
        $(#[doc = $doc])+
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize $($(, $derive)*)?)]
        #[serde(rename_all = "camelCase")]
        #[non_exhaustive]
        pub struct $name {
            $($(#[doc = $bdoc])+ #[serde(flatten)] pub $base_field: $base,)?
            $($(#[doc = $fdoc])+ pub $field: $ty,)*
            $($(#[doc = $sdoc])+ #[serde(skip)] pub(crate) $skip: $sty,)*
        }

        impl $name {
            /// This report's shape (its fields and their types).
            pub const SCHEMA: $crate::cache::ReportSchema = $crate::cache::ReportSchema {
                name: stringify!($name),
                doc: concat!($($doc),+).trim_ascii(),
                extends: cache_report!(@extends $($base)?),
                fields: &[$($crate::progress::FieldSchema {
                    name: stringify!($field),
                    ty: <$ty as $crate::progress::SchemaType>::NAME,
                    doc: concat!($($fdoc),+).trim_ascii(),
                },)*],
            };
        }

        impl $crate::progress::SchemaType for $name {
            const NAME: &'static str = stringify!($name);
        }
        impl $crate::progress::SchemaType for Vec<$name> {
            const NAME: &'static str = concat!(stringify!($name), "[]");
        }
    };
}

// Report types outside the cache module (`inspect`, `repair`, `unpack`) declare theirs with
// the same macro.
pub(crate) use cache_report;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::super::inventory::usage_of;
    use super::super::{
        CachedImage, CachedLayer, GcReport, ImageCheck, LayerCheck, Problem, ProblemKind,
        RemovedImage, VerifyReport,
    };
    use super::ReportSchema;
    use crate::digest::Digest;
    use crate::surface::CACHE_REPORTS;

    fn schema(name: &str) -> &'static ReportSchema {
        CACHE_REPORTS
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no schema for {name}"))
    }

    /// The JSON keys the schema of `name` promises, its `extends` included.
    fn promised(name: &str) -> BTreeSet<String> {
        let s = schema(name);
        let mut keys: BTreeSet<String> = s.fields.iter().map(|f| f.json_name()).collect();
        if let Some(base) = s.extends {
            keys.extend(promised(base));
        }
        keys
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn every_report_serialises_exactly_the_fields_its_schema_lists() {
        let d = Digest::sha256_of(b"layer");
        let image = CachedImage {
            names: vec!["r/x:1".into()],
            platform: "linux/amd64".into(),
            manifest_digest: Digest::sha256_of(b"m"),
            config_digest: Digest::sha256_of(b"c"),
            layers: vec![d.clone()],
            complete: true,
            last_used: 1,
            pulled_at: 1,
            keys: vec!["k".into()],
        };
        let layer = CachedLayer {
            diff_id: d.clone(),
            bytes: 4096,
            images: image.names.clone(),
        };
        let usage = serde_json::to_value(usage_of(vec![image.clone()], vec![layer], 0, 0)).unwrap();
        let report = serde_json::to_value(GcReport {
            removed_images: vec![RemovedImage {
                names: image.names.clone(),
                platform: image.platform.clone(),
                manifest_digest: image.manifest_digest.clone(),
            }],
            removed_layers: vec![d.clone()],
            ..GcReport::default()
        })
        .unwrap();
        let verify_report = VerifyReport {
            images: vec![ImageCheck {
                names: image.names.clone(),
                platform: image.platform.clone(),
                manifest_digest: image.manifest_digest.clone(),
                problems: vec![],
                damaged_layers: vec![d.clone()],
            }],
            layers: vec![LayerCheck {
                diff_id: d.clone(),
                entries: 3,
                bytes: 10,
                recorded: true,
                problems: vec![Problem::new(
                    ProblemKind::ContentChanged,
                    Some("app/hello.txt".into()),
                    "differs",
                )],
                more_problems: 0,
            }],
            records: vec![],
        };
        let verify = serde_json::to_value(&verify_report).unwrap();
        let back: VerifyReport = serde_json::from_value(verify.clone()).unwrap();
        assert_eq!(back, verify_report, "a verify report reads back as itself");
        let repair = serde_json::to_value(crate::pull::RepairReport {
            repaired_images: image.names.clone(),
            rebuilt_layers: vec![d.clone()],
            removed_records: 1,
            orphaned_layers: vec![],
            failed: vec![crate::pull::RepairFailure {
                image: "r/y:1".into(),
                error: "unreachable".into(),
            }],
        })
        .unwrap();
        let config = crate::ImageConfig::from_json(
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let remote = serde_json::to_value(crate::pull::RemoteImage {
            reference: "r/x:1".into(),
            digest: image.manifest_digest.clone(),
            index_digest: None,
            platforms: vec![image.platform.clone()],
            platform: image.platform.clone(),
            manifest_digest: image.manifest_digest.clone(),
            config_digest: image.config_digest.clone(),
            config,
            layers: vec![crate::pull::RemoteLayer {
                digest: d.clone(),
                size: 10,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                diff_id: d.clone(),
            }],
            download_size: 10,
        })
        .unwrap();
        let unpack = serde_json::to_value(crate::unpack::UnpackReport {
            entries: 3,
            bytes: 10,
            rootless: true,
            skipped_xattrs: vec![],
        })
        .unwrap();
        let save = serde_json::to_value(crate::offline::SaveReport {
            reference: "r/x:1".into(),
            target: "oci-layout:/tmp/x".into(),
            manifest_digest: image.manifest_digest.clone(),
            config_digest: image.config_digest.clone(),
            blobs_written: 2,
            bytes_written: 20,
        })
        .unwrap();
        let samples = [
            ("SaveReport", save),
            ("RepairReport", repair.clone()),
            ("RepairFailure", repair["failed"][0].clone()),
            ("RemoteImage", remote.clone()),
            ("RemoteLayer", remote["layers"][0].clone()),
            ("UnpackReport", unpack),
            ("CachedImage", serde_json::to_value(&image).unwrap()),
            ("DiskUsage", usage.clone()),
            ("ImageUsage", usage["images"][0].clone()),
            ("CachedLayer", usage["layers"][0].clone()),
            ("GcReport", report.clone()),
            ("RemovedImage", report["removedImages"][0].clone()),
            ("Problem", verify["layers"][0]["problems"][0].clone()),
            ("LayerCheck", verify["layers"][0].clone()),
            ("ImageCheck", verify["images"][0].clone()),
            ("VerifyReport", verify.clone()),
        ];
        for (name, value) in &samples {
            assert_eq!(keys(value), promised(name), "{name}: {value}");
        }
        let covered: BTreeSet<&str> = samples.iter().map(|(n, _)| *n).collect();
        let listed: BTreeSet<&str> = CACHE_REPORTS.iter().map(|r| r.name).collect();
        assert_eq!(covered, listed, "a report without a sample here");
        assert_eq!(schema("DiskUsage").fields[0].ty, "ImageUsage[]");
        assert_eq!(schema("ImageUsage").extends, Some("CachedImage"));
    }

    #[test]
    fn problem_kinds_list_every_variant_and_read_back() {
        let names: Vec<String> = ProblemKind::ALL.iter().map(|k| k.name()).collect();
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert!(names.iter().all(|n| !n.is_empty()));
        for k in ProblemKind::ALL {
            // A variant missing from ALL makes this match non-exhaustive only in spirit;
            // the count below is kept with the enum's declaration.
            let back: ProblemKind = serde_json::from_value(Value::from(k.name())).unwrap();
            assert_eq!(back, *k);
        }
        assert_eq!(
            ProblemKind::ALL.len(),
            19,
            "ProblemKind gained a variant: add it to ALL"
        );
        assert_eq!(schema("Problem").fields[0].ty, "string");
        assert_eq!(schema("Problem").fields[1].ty, "string?");
    }
}
