//! `core/api-surface.json` is what the core declares (error kinds, events, settings, pull
//! options). Regenerate it with `MSBIMAGE_BLESS=1 cargo test -p microsandbox-image --test
//! api_surface` after changing the surface; the front doors' parity tests read it.

use std::path::Path;

#[test]
fn committed_surface_matches_the_core() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("api-surface.json");
    let now = microsandbox_image::surface::api_surface_json();
    if std::env::var_os("MSBIMAGE_BLESS").is_some() {
        std::fs::write(&path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == now,
        "{} is stale: run MSBIMAGE_BLESS=1 cargo test -p microsandbox-image --test api_surface",
        path.display()
    );
}

/// `PROGRESS.md` documents every event type and field of the schema.
#[test]
fn progress_md_lists_every_event_and_field() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("PROGRESS.md")).unwrap();
    for event in microsandbox_image::PullProgress::SCHEMA {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", event.type_tag())))
            .unwrap_or_else(|| panic!("PROGRESS.md has no row for {}", event.type_tag()));
        let delivery = if event.milestone {
            "milestone"
        } else {
            "lossy"
        };
        assert!(row.contains(delivery), "{row}");
        for field in event.fields {
            let cell = format!("`{}` ({})", field.json_name(), field.ty);
            assert!(
                row.contains(&cell),
                "PROGRESS.md's {} row lacks {cell}",
                event.type_tag()
            );
        }
    }
}
