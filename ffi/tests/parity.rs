//! The C header has every item of the core's API surface (`core/api-surface.json`): a status
//! `MSB_STATUS_<CODE> = <status>` per error kind, a progress kind
//! `MSB_PROGRESS_KIND_<EVENT>` per event type with a field for each event field (or the
//! event's `json`), and every registry setting reachable (through
//! `msb_registry_builder_set_config_json`, which the core deserialises).

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn surface() -> serde_json::Value {
    serde_json::from_str(&read("../core/api-surface.json")).expect("api-surface.json parses")
}

/// `layerDownloadProgress` → `LAYER_DOWNLOAD_PROGRESS`.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `layerIndex` → `layer_index`.
fn snake(camel: &str) -> String {
    screaming(camel).to_ascii_lowercase()
}

#[test]
fn every_error_kind_has_its_status() {
    let header = read("../include/msbimage.h");
    for kind in surface()["errorKinds"].as_array().unwrap() {
        let line = format!(
            "MSB_STATUS_{} = {},",
            kind["code"].as_str().unwrap(),
            kind["status"]
        );
        assert!(header.contains(&line), "the header lacks `{line}`");
    }
}

#[test]
fn every_event_type_has_its_kind_and_fields() {
    let header = read("../include/msbimage.h");
    let event_struct = header
        .split("typedef struct msb_progress_event {")
        .nth(1)
        .and_then(|s| s.split("} msb_progress_event;").next())
        .expect("the header declares msb_progress_event");
    assert!(
        event_struct.contains(" json;"),
        "events carry their JSON form"
    );
    for event in surface()["events"].as_array().unwrap() {
        let kind = format!(
            "MSB_PROGRESS_KIND_{}",
            screaming(event["type"].as_str().unwrap())
        );
        assert!(header.contains(&kind), "the header lacks {kind}");
        for field in event["fields"].as_array().unwrap() {
            let name = snake(field["name"].as_str().unwrap());
            assert!(
                event_struct.contains(&format!(" {name};")),
                "msb_progress_event lacks the field {name} of {kind}"
            );
        }
    }
}

#[test]
fn every_registry_setting_is_reachable() {
    let header = read("../include/msbimage.h");
    assert!(header.contains("msb_registry_builder_set_config_json("));
    // Every key of the defaults deserialises back through the same path the C call takes.
    let defaults = &surface()["registryConfig"]["defaults"];
    for (key, value) in defaults.as_object().unwrap() {
        let mut config = microsandbox_image::RegistryConfig::default();
        let one = serde_json::json!({ key: value }).to_string();
        config
            .merge_json(&one)
            .unwrap_or_else(|e| panic!("setting {key}: {e}"));
    }
}
