//! The cache commands: `ls`, `rm`, `du`, `gc`, `verify`. Each runs the core's `GlobalCache` call on a
//! blocking thread and prints a table, or with `--json` one JSON object, on stdout.

use std::path::PathBuf;

use microsandbox_image::{
    CachedImage, Error, GcPolicy, GcReport, GlobalCache, Platform, Reference, Registry,
    RepairReport, VerifyReport,
};

use crate::args::{CacheArgs, GcArgs, LsArgs, RmArgs, VerifyArgs, base_registry_config};
use crate::{Failure, default_cache_dir, print_stdout};

/// Open the cache named by `--cache` (or the default one). These commands never create one.
fn open(args: &CacheArgs) -> Result<GlobalCache, Failure> {
    let dir: PathBuf = match &args.cache {
        Some(d) => d.clone(),
        None => default_cache_dir()?,
    };
    if !dir.is_dir() {
        return Err(Failure::Other {
            code: microsandbox_image::ErrorKind::NotFound.exit_code(),
            message: format!("no cache at {}", dir.display()),
        });
    }
    Ok(GlobalCache::with_options(&dir, &args.access.options()).map_err(Error::from)?)
}

async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, microsandbox_image::CacheError> + Send + 'static,
) -> Result<T, Failure> {
    let out = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("cache task: {e}")))?;
    Ok(out.map_err(Error::from)?)
}

fn json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))?;
    print_stdout(&(text + "\n"))
}

/// `1.2 GB`-style sizes (powers of 1000, as `du -h --si`).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// How long ago `secs` (Unix time) was.
fn ago(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let d = now.saturating_sub(secs);
    match d {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", d / 60),
        3600..86_400 => format!("{} h ago", d / 3600),
        _ => format!("{} days ago", d / 86_400),
    }
}

fn names(image: &CachedImage) -> String {
    let mut s = image.names.join(", ");
    if !image.complete {
        s.push_str(" (incomplete)");
    }
    s
}

pub async fn ls(args: LsArgs) -> Result<(), Failure> {
    let cache = open(&args.cache)?;
    let usage = run(move || cache.disk_usage()).await?;
    if args.cache.json {
        return json(&serde_json::json!({ "images": usage.images }));
    }
    let mut out = format!(
        "{:<48} {:<14} {:<19} {:>10} {:>14}\n",
        "NAME", "PLATFORM", "DIGEST", "SIZE", "LAST USED"
    );
    for u in &usage.images {
        out += &format!(
            "{:<48} {:<14} {:<19} {:>10} {:>14}\n",
            names(&u.image),
            u.image.platform,
            format!("sha256:{}", u.image.manifest_digest.short()),
            human(u.exclusive_bytes + u.shared_bytes),
            ago(u.image.last_used),
        );
    }
    print_stdout(&out)
}

pub async fn du(args: LsArgs) -> Result<(), Failure> {
    let cache = open(&args.cache)?;
    let usage = run(move || cache.disk_usage()).await?;
    if args.cache.json {
        return json(&usage);
    }
    let mut out = format!(
        "{:<48} {:<14} {:>10} {:>10}\n",
        "IMAGE", "PLATFORM", "EXCLUSIVE", "SHARED"
    );
    for u in &usage.images {
        out += &format!(
            "{:<48} {:<14} {:>10} {:>10}\n",
            names(&u.image),
            u.image.platform,
            human(u.exclusive_bytes),
            human(u.shared_bytes)
        );
    }
    out += &format!("\n{:<19} {:>10}  HELD BY\n", "LAYER", "SIZE");
    for l in &usage.layers {
        let held = if l.images.is_empty() {
            "(nothing: gc removes it)".to_owned()
        } else {
            l.images.join(", ")
        };
        out += &format!(
            "sha256:{:<12} {:>10}  {held}\n",
            l.diff_id.short(),
            human(l.bytes)
        );
    }
    out += &format!(
        "\nlayers {}, of which unreferenced {}; flat images {}; tmp {}\n",
        human(usage.layer_bytes),
        human(usage.unreferenced_bytes),
        human(usage.flat_bytes),
        human(usage.tmp_bytes)
    );
    print_stdout(&out)
}

fn report_text(r: &GcReport) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    for image in &r.removed_images {
        out += &format!(
            "{verb} image {} ({})\n",
            image.names.join(", "),
            image.platform
        );
    }
    for d in &r.removed_layers {
        out += &format!("{verb} layer {d}\n");
    }
    for d in &r.in_use_layers {
        out += &format!("kept layer {d}: in use\n");
    }
    out += &format!(
        "{verb} {} images, {} layers, {} manifests, {} flat images, {} debris: {}\n",
        r.removed_images.len(),
        r.removed_layers.len(),
        r.removed_manifests,
        r.removed_flat_images,
        r.removed_debris,
        human(r.freed_bytes)
    );
    out
}

pub async fn rm(args: RmArgs) -> Result<(), Failure> {
    let cache = open(&args.cache)?;
    let mut reports = Vec::new();
    for text in &args.references {
        let reference: Reference = text.parse().map_err(Error::from)?;
        let (cache, platform) = (cache.clone(), args.platform.clone());
        reports.push(run(move || cache.remove_image(&reference, platform.as_ref())).await?);
    }
    if args.cache.json {
        return json(&serde_json::json!({ "removed": reports }));
    }
    print_stdout(&reports.iter().map(report_text).collect::<String>())
}

pub async fn gc(args: GcArgs) -> Result<(), Failure> {
    let cache = open(&args.cache)?;
    let policy = GcPolicy {
        dry_run: args.dry_run,
        max_size: args.max_size,
        keep_recent: args.keep_recent,
    };
    let report = run(move || cache.gc(&policy)).await?;
    if args.cache.json {
        return json(&report);
    }
    print_stdout(&report_text(&report))
}

/// Exit status of `verify` when damage remains (not an error kind: the check itself worked).
const DAMAGE_FOUND: u8 = 1;

pub async fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let cache = open(&args.cache)?;
    let references = args
        .references
        .iter()
        .map(|r| r.parse::<Reference>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::from)?;
    let check = || {
        let (cache, references) = (cache.clone(), references.clone());
        run(move || cache.verify(&references))
    };
    let mut report = check().await?;
    let mut repair = None;
    if args.repair && !report.is_clean() {
        let mut config = base_registry_config(args.config.as_deref())?;
        config
            .insecure_registries
            .extend(args.insecure_registry.iter().cloned());
        let registry = Registry::from_config(Platform::host_linux(), cache.clone(), config)?;
        repair = Some(registry.repair(&report).await?);
        report = check().await?;
    }
    if args.cache.json {
        json(&serde_json::json!({ "report": report, "repair": repair }))?;
    } else {
        print_stdout(
            &(repair.as_ref().map(repair_text).unwrap_or_default() + &verify_text(&report)),
        )?;
    }
    if report.is_clean() {
        return Ok(());
    }
    Err(Failure::Other {
        code: DAMAGE_FOUND,
        message: format!(
            "{} problems found{}",
            report.problem_count(),
            if args.repair {
                " after repair"
            } else {
                "; `msbimage verify --repair` re-pulls what is damaged"
            }
        ),
    })
}

fn verify_text(r: &VerifyReport) -> String {
    let mut out = String::new();
    for p in &r.records {
        out += &format!("record: {p}\n");
    }
    for image in r.images.iter().filter(|i| !i.is_ok()) {
        out += &format!("image {} ({}):\n", image.names.join(", "), image.platform);
        for p in &image.problems {
            out += &format!("  {p}\n");
        }
        for d in &image.damaged_layers {
            out += &format!("  damaged layer {d}\n");
        }
    }
    for layer in r.layers.iter().filter(|l| !l.is_ok()) {
        out += &format!("layer {}:\n", layer.diff_id);
        for p in &layer.problems {
            out += &format!("  {p}\n");
        }
        if layer.more_problems > 0 {
            out += &format!("  … and {} more\n", layer.more_problems);
        }
    }
    let (entries, bytes) = r
        .layers
        .iter()
        .fold((0, 0), |(e, b), l| (e + l.entries, b + l.bytes));
    let unrecorded = r.layers.iter().filter(|l| !l.recorded).count();
    out += &format!(
        "checked {} images, {} layers ({entries} entries, {} of content){}: {}\n",
        r.images.len(),
        r.layers.len(),
        human(bytes),
        if unrecorded > 0 {
            format!("; {unrecorded} layers predate content records (index and metadata checked)")
        } else {
            String::new()
        },
        match r.problem_count() {
            0 => "no problems".to_string(),
            n => format!("{n} problems"),
        }
    );
    out
}

fn repair_text(r: &RepairReport) -> String {
    let mut out = String::new();
    for image in &r.repaired_images {
        out += &format!("repaired {image}\n");
    }
    for d in &r.rebuilt_layers {
        out += &format!("rebuilt layer {d}\n");
    }
    if r.removed_records > 0 {
        out += &format!("removed {} invalid image records\n", r.removed_records);
    }
    for d in &r.orphaned_layers {
        out += &format!("left layer {d}: no image names it (`msbimage gc` removes it)\n");
    }
    for f in &r.failed {
        out += &format!("could not repair {}: {}\n", f.image, f.error);
    }
    out
}
