//! `msbimage-testkit serve [--tls] [--basic USER:PASS] [--push-fixtures] [--ignore-stdin]
//! [--reset-every N [--seed S]] [--blob-log FILE]`: starts a real registry, optionally pushes
//! the standard fixtures (`fixtures/standard:gzip|zstd|none`, `fixtures/multi:latest`),
//! prints one JSON line `{"host", "base_url", "ca", "user", "pass", "manifests", "proxy_host",
//! "proxy_base_url"}` on stdout, and serves until SIGINT/SIGTERM or until stdin closes
//! (unless `--ignore-stdin`). Tests written in other languages (C, Go, Python, Node) drive
//! the registry through it.
//!
//! With `--reset-every N` or `--blob-log FILE` a [`FaultProxy`] runs in front of the
//! registry too (`proxy_host`, plain HTTP; otherwise those keys are `null`): it resets one
//! blob GET in `N` after a varying number of bytes ([`Fault::ResetEvery`], cut points drawn
//! from `--seed`, default 1), forwards `Range` so clients can resume, and appends one JSON
//! line per blob GET to `FILE` ([`msbimage_testkit::BlobServed`]). `tests/soak/run.sh`
//! pulls through it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use msbimage_testkit::fixtures::{multiplatform, standard_image};
use msbimage_testkit::{
    Compression, Fault, FaultProxy, FrontOptions, ManifestFormat, Pusher, Registry, RegistryOptions,
};
use serde_json::json;
use tokio::io::AsyncReadExt as _;

const USAGE: &str = "usage: msbimage-testkit serve [--tls] [--basic USER:PASS] [--push-fixtures] \
     [--ignore-stdin] [--reset-every N [--seed S]] [--blob-log FILE]";

struct Args {
    tls: bool,
    basic: Option<(String, String)>,
    push_fixtures: bool,
    ignore_stdin: bool,
    reset_every: Option<u32>,
    seed: u64,
    blob_log: Option<PathBuf>,
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
        reset_every: None,
        seed: 1,
        blob_log: None,
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
            "--reset-every" => {
                let v = it.next().ok_or("--reset-every needs N")?;
                let n = v
                    .parse()
                    .map_err(|_| format!("--reset-every: bad number {v:?}"))?;
                args.reset_every = Some(n);
            }
            "--seed" => {
                let v = it.next().ok_or("--seed needs a number")?;
                args.seed = v.parse().map_err(|_| format!("--seed: bad number {v:?}"))?;
            }
            "--blob-log" => {
                args.blob_log = Some(PathBuf::from(it.next().ok_or("--blob-log needs FILE")?));
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
    let proxy = if args.reset_every.is_some() || args.blob_log.is_some() {
        let fault = match args.reset_every {
            Some(every) => Fault::ResetEvery {
                every,
                seed: args.seed,
            },
            None => Fault::None,
        };
        let mut front = FrontOptions::default();
        if let Some(ca) = registry.ca_pem_path() {
            front = front.ca(ca);
        }
        if let Some(log) = &args.blob_log {
            front = front.log(log);
        }
        match FaultProxy::start_with(&registry.base_url(), fault, front).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("msbimage-testkit: fault proxy failed to start: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let line = json!({
        "host": registry.host(),
        "base_url": registry.base_url(),
        "ca": registry.ca_pem_path().map(|p| p.display().to_string()),
        "user": args.basic.as_ref().map(|(u, _)| u),
        "pass": args.basic.as_ref().map(|(_, p)| p),
        "manifests": manifests,
        "proxy_host": proxy.as_ref().map(FaultProxy::host),
        "proxy_base_url": proxy.as_ref().map(FaultProxy::base_url),
    });
    println!("{line}");
    wait_for_end(args.ignore_stdin).await;
    drop(proxy);
    drop(registry);
    ExitCode::SUCCESS
}
