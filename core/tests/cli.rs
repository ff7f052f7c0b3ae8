//! The `msbimage` command line, without a registry: help, argument errors, exit codes, the
//! default cache directory, and `inspect` on an empty cache. Every reference points at a
//! closed loopback port, so nothing here can reach the network even if a check regresses.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

/// Loopback port 1: connections are refused at once.
const REF: &str = "127.0.0.1:1/fixtures/standard:gzip";

/// Runs `msbimage ARGS` with a clean environment (no inherited cache or Docker config).
fn run_in(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("MSBIMAGE_CACHE")
        .env_remove("XDG_CACHE_HOME")
        .env("DOCKER_CONFIG", "/nonexistent/msbimage-test-docker-config")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run msbimage")
}

fn run(args: &[&str]) -> Output {
    run_in(args, &[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code and that stderr is exactly one `msbimage: error: …` line.
fn assert_error(o: &Output, code: i32, contains: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err:?}");
    assert!(
        lines[0].starts_with("msbimage: error: "),
        "unexpected error line: {err:?}"
    );
    assert!(lines[0].contains(contains), "{contains:?} not in {err:?}");
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for want in [
        "pull",
        "inspect",
        "Exit codes",
        " 2 ",
        " 3 ",
        " 4 ",
        " 5 ",
        " 6 ",
        " 7 ",
        " 8 ",
        " 9 ",
        " 10 ",
        " 70 ",
        " 130 ",
        "MSBIMAGE_CACHE",
    ] {
        assert!(out.contains(want), "{want:?} missing from --help:\n{out}");
    }
}

#[test]
fn pull_help_lists_every_option() {
    let o = run(&["pull", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for want in [
        "<REF>",
        "--platform",
        "--policy",
        "if-missing",
        "always",
        "never",
        "--force",
        "--cache",
        "--insecure-registry",
        "--ca-file",
        "--mirror",
        "--concurrency",
        "--no-index",
        "--cache-max-size",
        "--cache-keep-recent",
        "--username",
        "--password-stdin",
        "--cache-group",
        "--read-only",
        "--json",
        "--progress",
        "plain",
        "tty",
        "Exit codes",
    ] {
        assert!(
            out.contains(want),
            "{want:?} missing from pull --help:\n{out}"
        );
    }
    let o = run(&["inspect", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--cache"));
}

#[test]
fn invalid_reference_exits_2() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    for bad in ["Bad/Upper", "", "http://example.com/a", "a//b"] {
        let o = run(&["pull", bad, "--cache", dir, "--progress", "none"]);
        assert_error(&o, 2, "invalid reference");
    }
    let o = run(&["inspect", "Bad/Upper", "--cache", dir]);
    assert_error(&o, 2, "invalid reference");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["pull"][..],
        &["pull", REF, "--platform", "linux/"],
        &["pull", REF, "--platform", "linux"],
        &["pull", REF, "--policy", "sometimes"],
        &["pull", REF, "--progress", "fancy"],
        &["pull", REF, "--concurrency", "0"],
        &["pull", REF, "--mirror", "no-equals-sign"],
        &["pull", REF, "--username", "u"],
        &["pull", REF, "--password-stdin"],
        &["frobnicate"],
        &[],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn force_with_policy_never_is_an_invalid_argument() {
    let cache = tempfile::tempdir().unwrap();
    let o = run(&[
        "pull",
        REF,
        "--cache",
        cache.path().to_str().unwrap(),
        "--policy",
        "never",
        "--force",
    ]);
    assert_error(&o, 2, "--force");
}

#[test]
fn policy_never_on_empty_cache_exits_3() {
    let cache = tempfile::tempdir().unwrap();
    for progress in ["none", "plain", "json", "auto", "tty"] {
        for json in [false, true] {
            let mut args = vec![
                "pull",
                REF,
                "--cache",
                cache.path().to_str().unwrap(),
                "--policy",
                "never",
                "--progress",
                progress,
            ];
            if json {
                args.push("--json");
            }
            let o = run(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
            if json {
                // Errors are data too: one JSON object on stdout.
                let doc: serde_json::Value =
                    serde_json::from_str(stdout(&o).trim()).expect("a JSON error object");
                assert_eq!(doc["error"]["kind"], "NOT_CACHED", "{doc}");
                assert_eq!(doc["error"]["image"], REF, "{doc}");
                assert!(
                    doc["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("not in the cache")
                );
            } else {
                assert!(o.stdout.is_empty(), "{args:?}: stdout {}", stdout(&o));
            }
            let last = err.lines().last().unwrap_or_default();
            assert!(
                last.starts_with("msbimage: error: ") && last.contains("not in the cache"),
                "{args:?}: {err:?}"
            );
            if progress == "none" {
                assert_eq!(err.lines().count(), 1, "{err:?}");
            }
            if progress == "json" {
                // Every line but the error is one progress event as JSON.
                let events: Vec<serde_json::Value> = err
                    .lines()
                    .filter(|l| !l.starts_with("msbimage: error: "))
                    .map(|l| serde_json::from_str(l).expect("a JSON event line"))
                    .collect();
                assert!(!events.is_empty());
                assert_eq!(events[0]["type"], "resolving");
                assert_eq!(events[0]["reference"], REF);
                // A failed pull's event stream ends with the error.
                let end = events.last().unwrap();
                assert_eq!(end["type"], "error", "{end}");
                assert_eq!(end["kind"], "NOT_CACHED", "{end}");
            }
        }
    }
}

#[test]
fn inspect_on_empty_cache_exits_3_without_output() {
    let cache = tempfile::tempdir().unwrap();
    let o = run(&["inspect", REF, "--cache", cache.path().to_str().unwrap()]);
    assert_error(&o, 3, "not in the cache");

    // A cache directory that does not exist is not created by a read-only command.
    let missing = cache.path().join("does-not-exist");
    let o = run(&["inspect", REF, "--cache", missing.to_str().unwrap()]);
    assert_error(&o, 3, REF);
    assert!(!missing.exists());

    let o = run(&[
        "inspect",
        REF,
        "--cache",
        cache.path().to_str().unwrap(),
        "--platform",
        "linux/arm64",
    ]);
    assert_error(&o, 3, "not in the cache");
}

#[test]
fn default_cache_dir_follows_the_environment() {
    let tmp = tempfile::tempdir().unwrap();

    let explicit = tmp.path().join("explicit");
    let o = run_in(
        &["pull", REF, "--policy", "never", "--progress", "none"],
        &[("MSBIMAGE_CACHE", &explicit)],
    );
    assert_error(&o, 3, "not in the cache");
    assert!(explicit.join("layers").is_dir(), "MSBIMAGE_CACHE not used");

    let xdg = tmp.path().join("xdg");
    let o = run_in(
        &["pull", REF, "--policy", "never", "--progress", "none"],
        &[("XDG_CACHE_HOME", &xdg)],
    );
    assert_error(&o, 3, "not in the cache");
    assert!(xdg.join("msbimage").join("layers").is_dir());

    let home = tmp.path().join("home");
    let o = run_in(
        &["pull", REF, "--policy", "never", "--progress", "none"],
        &[("HOME", &home)],
    );
    assert_error(&o, 3, "not in the cache");
    assert!(home.join(".cache").join("msbimage").join("layers").is_dir());

    // --cache wins over the environment.
    let flag = tmp.path().join("flag");
    let elsewhere = tmp.path().join("elsewhere");
    let o = run_in(
        &[
            "pull",
            REF,
            "--policy",
            "never",
            "--progress",
            "none",
            "--cache",
            flag.to_str().unwrap(),
        ],
        &[("MSBIMAGE_CACHE", &elsewhere)],
    );
    assert_error(&o, 3, "not in the cache");
    assert!(flag.join("layers").is_dir());
    assert!(!elsewhere.exists());
}

#[test]
fn unreadable_ca_file_exits_2() {
    let cache = tempfile::tempdir().unwrap();
    let o = run(&[
        "pull",
        REF,
        "--cache",
        cache.path().to_str().unwrap(),
        "--ca-file",
        "/nonexistent/ca.pem",
        "--progress",
        "none",
    ]);
    assert_error(&o, 2, "CA file");
}

#[test]
fn refused_connection_exits_6() {
    // Loopback port 1 refuses at once; the registry error kind maps to 6.
    let cache = tempfile::tempdir().unwrap();
    let o = run(&[
        "pull",
        REF,
        "--cache",
        cache.path().to_str().unwrap(),
        "--progress",
        "none",
    ]);
    assert_error(&o, 6, REF);
}

/// The CLI has every item of the core's API surface (`core/api-surface.json`): each error
/// kind's exit code and description in `--help`, each cache option as a flag, and every
/// registry setting through `--config FILE` (a file naming every key is accepted; a misspelt key is refused by name).
#[test]
fn parity_with_the_api_surface() {
    let surface: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("api-surface.json"))
            .unwrap(),
    )
    .unwrap();
    let help = stdout(&run(&["pull", "--help"]));
    for kind in surface["errorKinds"].as_array().unwrap() {
        let line = format!(" {} ", kind["exitCode"]);
        assert!(
            help.contains(&line),
            "--help lacks exit code {line}:\n{help}"
        );
        let doc = kind["doc"].as_str().unwrap();
        assert!(help.contains(doc), "--help lacks {doc:?}");
    }

    // Every cache option has its flag, on every command that opens a cache.
    let flag_of = |key: &str| match key {
        "group" => "--cache-group",
        "readOnly" => "--read-only",
        other => panic!("cache option {other} has no CLI flag"),
    };
    for key in surface["cacheOptions"]["defaults"]
        .as_object()
        .unwrap()
        .keys()
    {
        for command in ["pull", "inspect", "ls", "du", "rm", "gc"] {
            let help = stdout(&run(&[command, "--help"]));
            assert!(help.contains(flag_of(key)), "{command} --help lacks {key}");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let config = dir.path().join("config.json");
    let every_setting = surface["registryConfig"]["defaults"].to_string();
    std::fs::write(&config, every_setting).unwrap();
    let args = |config: &Path| {
        let o = run(&[
            "pull",
            REF,
            "--cache",
            cache.to_str().unwrap(),
            "--policy",
            "never",
            "--config",
            config.to_str().unwrap(),
        ]);
        (o.status.code(), stderr(&o))
    };
    // Accepted: the pull gets as far as the cache (exit 3, not 2).
    let (code, err) = args(&config);
    assert_eq!(code, Some(3), "{err}");

    std::fs::write(&config, r#"{"maxRetires": 3}"#).unwrap();
    let (code, err) = args(&config);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("maxRetires"), "{err}");
}
