//! `msbimage-shaper --listen 127.0.0.1:0 --upstream HOST:PORT --profile PROFILE`: a shaping
//! TCP proxy (see `msbimage_testkit::shaper`) in front of `HOST:PORT`. Prints the address
//! it listens on as the first line of stdout, then runs until killed (SIGTERM, SIGINT).
//! PROFILE is `lan`, `wan`, `slow` or explicit, e.g. `rtt=40ms,conn=25MB,link=200MB`
//! (MB = 10^6 bytes, rates per second; add `no-slow-start` to switch slow start off).
//!
//! `msbimage-shaper --print-profile PROFILE` prints the profile as one JSON line and exits.

use std::net::SocketAddr;
use std::process::ExitCode;

use msbimage_testkit::LinkProfile;
use msbimage_testkit::Shaper;

const USAGE: &str = "usage: msbimage-shaper [--listen ADDR] --upstream HOST:PORT --profile PROFILE\n       msbimage-shaper --print-profile PROFILE";

struct Args {
    listen: String,
    upstream: Option<String>,
    profile: Option<LinkProfile>,
    print_only: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:0".into(),
        upstream: None,
        profile: None,
        print_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => args.listen = val()?,
            "--upstream" => args.upstream = Some(val()?),
            "--profile" | "--print-profile" => {
                args.print_only = a == "--print-profile";
                args.profile = Some(LinkProfile::parse(&val()?).map_err(|e| e.to_string())?);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    Ok(args)
}

async fn resolve(what: &str, addr: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("{what} {addr}: {e}"))?
        .next()
        .ok_or(format!("{what} {addr}: no address"))
}

async fn run(args: Args) -> Result<(), String> {
    let profile = args.profile.ok_or(USAGE)?;
    if args.print_only {
        println!("{}", profile.to_json());
        return Ok(());
    }
    let upstream = resolve("upstream", args.upstream.as_deref().ok_or(USAGE)?).await?;
    let listen = resolve("listen", &args.listen).await?;
    let shaper = Shaper::start_on(listen, upstream, profile)
        .await
        .map_err(|e| format!("listen on {listen}: {e}"))?;
    println!("{}", shaper.addr());
    eprintln!(
        "msbimage-shaper: {} -> {upstream}, {} ({})",
        shaper.addr(),
        shaper.profile().name,
        shaper.profile()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("msbimage-shaper: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("msbimage-shaper: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msbimage-shaper: {e}");
            ExitCode::FAILURE
        }
    }
}
