//! `msbimage-testkit serve [--tls] [--basic USER:PASS] [--push-fixtures] [--ignore-stdin]`:
//! starts a real registry, optionally pushes the standard fixtures
//! (`fixtures/standard:gzip|zstd|none`, `fixtures/multi:latest`), prints one JSON line
//! `{"host", "base_url", "ca", "user", "pass", "manifests"}` on stdout, and serves until
//! SIGINT/SIGTERM or until stdin closes (unless `--ignore-stdin`). Tests written in other
//! languages (C, Go, Python, Node) drive the registry through it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use msbimage_testkit::fixtures::{multiplatform, standard_image};
use msbimage_testkit::{Compression, ManifestFormat, Pusher, Registry, RegistryOptions};
use serde_json::json;
use tokio::io::AsyncReadExt as _;

const USAGE: &str =
    "usage: msbimage-testkit serve [--tls] [--basic USER:PASS] [--push-fixtures] [--ignore-stdin]";

struct Args {
    tls: bool,
    basic: Option<(String, String)>,
    push_fixtures: bool,
    ignore_stdin: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    if it.next().as_deref() != Some("serve") {
        return Err(USAGE.to_string());
    }
    let mut args = Args {
        tls: false,
        basic: None,
        push_fixtures: false,
        ignore_stdin: false,
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tls" => args.tls = true,
            "--push-fixtures" => args.push_fixtures = true,
            "--ignore-stdin" => args.ignore_stdin = true,
            "--basic" => {
                let v = it.next().ok_or("--basic needs USER:PASS")?;
                let (u, p) = v.split_once(':').ok_or("--basic needs USER:PASS")?;
                args.basic = Some((u.to_string(), p.to_string()));
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// Pushes the fixtures; returns reference → manifest digest.
async fn push_fixtures(
    registry: &Registry,
    args: &Args,
) -> Result<BTreeMap<String, String>, String> {
    let mut pusher = Pusher::new(&registry.base_url());
    if let Some(ca) = registry.ca_pem_path() {
        pusher = pusher.with_ca(ca);
    }
    if let Some((u, p)) = &args.basic {
        pusher = pusher.with_basic(u, p);
    }
    let mut manifests = BTreeMap::new();
    for (tag, c) in [
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("none", Compression::None),
    ] {
        let image = standard_image(c);
        pusher
            .push_image("fixtures/standard", tag, &image)
            .await
            .map_err(|e| e.to_string())?;
        manifests.insert(format!("fixtures/standard:{tag}"), image.manifest_digest);
    }
    let mp = multiplatform(ManifestFormat::Oci);
    pusher
        .push_index("fixtures/multi", "latest", &mp.index, &mp.all_images())
        .await
        .map_err(|e| e.to_string())?;
    manifests.insert("fixtures/multi:latest".to_string(), mp.index.digest);
    Ok(manifests)
}

async fn wait_for_end(ignore_stdin: bool) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let stdin_closed = async {
        if ignore_stdin {
            std::future::pending::<()>().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = stdin_closed => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut opts = RegistryOptions::plain();
    if args.tls {
        opts = opts.tls();
    }
    if let Some((u, p)) = &args.basic {
        opts = opts.basic(u, p);
    }
    let registry = match Registry::start(opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("msbimage-testkit: registry failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let manifests = if args.push_fixtures {
        match push_fixtures(&registry, &args).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("msbimage-testkit: pushing fixtures failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        BTreeMap::new()
    };
    let line = json!({
        "host": registry.host(),
        "base_url": registry.base_url(),
        "ca": registry.ca_pem_path().map(|p| p.display().to_string()),
        "user": args.basic.as_ref().map(|(u, _)| u),
        "pass": args.basic.as_ref().map(|(_, p)| p),
        "manifests": manifests,
    });
    println!("{line}");
    wait_for_end(args.ignore_stdin).await;
    drop(registry);
    ExitCode::SUCCESS
}
