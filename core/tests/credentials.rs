//! Credentials from the files users keep, against real htpasswd registries on loopback: Podman's
//! `auth.json` at `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR` and `$XDG_CONFIG_HOME`, then
//! Docker's `config.json`, first match wins; `host/namespace` keys most specific first; keys
//! written with a scheme; opting out; and no password in any output of a failing pull.
//!
//! The CLI runs as a child process with an environment of its own, so the tests never change
//! this process's environment.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use base64::Engine;
use common::{Env, output_text as text};
use microsandbox_image::{CredentialSource, PullOptions, PullPolicy};
use msbimage_testkit::RegistryOptions;

/// An `auths` file: each `(key, user, password)` as a base64 `auth` entry.
fn auth_file(path: &Path, entries: &[(&str, &str, &str)]) {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, user, pass)| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            (key.to_string(), serde_json::json!({ "auth": b64 }))
        })
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, serde_json::json!({ "auths": auths }).to_string()).unwrap();
}

/// A home for the CLI: every credential place under one temporary directory, none set up.
struct Home {
    dir: tempfile::TempDir,
    /// `REGISTRY_AUTH_FILE`, if set.
    registry_auth_file: Option<PathBuf>,
    /// Directories put first on `PATH` (credential helpers).
    path_dirs: Vec<PathBuf>,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            registry_auth_file: None,
            path_dirs: Vec::new(),
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn xdg_runtime_file(&self) -> PathBuf {
        self.p("run/containers/auth.json")
    }
    fn xdg_config_file(&self) -> PathBuf {
        self.p("config/containers/auth.json")
    }
    fn docker_file(&self) -> PathBuf {
        self.p("docker/config.json")
    }

    /// `msbimage ARGS` with only this home's environment.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = common::cli_in_home(self.dir.path(), &self.path_dirs);
        cmd.args(args).stdin(Stdio::null());
        if let Some(f) = &self.registry_auth_file {
            cmd.env("REGISTRY_AUTH_FILE", f);
        }
        cmd.output().expect("run msbimage")
    }

    /// `msbimage pull REF` into a fresh cache, with `--json` and JSON progress (unless
    /// `extra` names another `--progress`).
    fn pull(&self, reference: &str, extra: &[&str]) -> Output {
        let cache = tempfile::tempdir().unwrap();
        let mut args = vec!["pull", reference, "--cache", cache.path().to_str().unwrap()];
        args.push("--json");
        if !extra.contains(&"--progress") {
            args.extend(["--progress", "json"]);
        }
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

#[track_caller]
fn assert_pulled(o: &Output) {
    common::assert_exit(o, 0);
}

/// Exit code 5: authentication failed.
#[track_caller]
fn assert_auth_failure(o: &Output) {
    common::assert_exit(o, 5);
}

#[tokio::test]
async fn registry_auth_file_is_used() {
    let env = Env::start(RegistryOptions::plain().basic("alice", "s3cret")).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    let reference = format!("{}/team/app:v1", env.host());
    let mut home = Home::new();
    assert_auth_failure(&home.pull(&reference, &[]));

    let file = home.p("elsewhere/auth.json");
    auth_file(&file, &[(&env.host(), "alice", "s3cret")]);
    home.registry_auth_file = Some(file);
    assert_pulled(&home.pull(&reference, &[]));
}

#[tokio::test]
async fn sources_are_read_in_podman_order_first_match_wins() {
    let env = Env::start(RegistryOptions::plain().basic("alice", "s3cret")).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    let host = env.host();
    let reference = format!("{host}/team/app:v1");
    let mut home = Home::new();
    let raf = home.p("raf/auth.json");
    let files = [
        raf.clone(),
        home.xdg_runtime_file(),
        home.xdg_config_file(),
        home.docker_file(),
    ];
    home.registry_auth_file = Some(raf);
    // The file at position `right` holds the password, every other one a wrong password: only
    // the first file is used (a wrong one before the right one fails the pull).
    for right in 0..files.len() {
        for (i, f) in files.iter().enumerate() {
            let pass = if i == right { "s3cret" } else { "wrong" };
            auth_file(f, &[(&host, "alice", pass)]);
        }
        let o = home.pull(&reference, &[]);
        if right == 0 {
            assert_pulled(&o);
        } else {
            assert_auth_failure(&o);
        }
        // Without the earlier files, the right one is found.
        for f in &files[..right] {
            std::fs::remove_file(f).unwrap();
        }
        assert_pulled(&home.pull(&reference, &[]));
    }
    // A file without an entry for the registry does not stop the search.
    auth_file(&files[0], &[("other.example", "alice", "wrong")]);
    assert_pulled(&home.pull(&reference, &[]));
}

#[tokio::test]
async fn namespace_keys_win_most_specific_first() {
    let env = Env::start(RegistryOptions::plain().basic("alice", "s3cret")).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    env.push("team/tool", "v1", &common::one_layer_image())
        .await;
    env.push("other/app", "v1", &common::one_layer_image())
        .await;
    let host = env.host();
    let home = Home::new();
    auth_file(
        &home.xdg_config_file(),
        &[
            (&host, "alice", "wrong-host-level"),
            (&format!("{host}/team"), "alice", "wrong-team-level"),
            (&format!("{host}/team/app"), "alice", "s3cret"),
            (&format!("{host}/team/tool/"), "alice", "s3cret"),
        ],
    );
    assert_pulled(&home.pull(&format!("{host}/team/app:v1"), &[]));
    assert_pulled(&home.pull(&format!("{host}/team/tool:v1"), &[]));
    // Only the host-level entry applies to another namespace: its wrong password is used.
    assert_auth_failure(&home.pull(&format!("{host}/other/app:v1"), &[]));

    auth_file(
        &home.xdg_config_file(),
        &[
            (&host, "alice", "wrong-host-level"),
            (&format!("{host}/team"), "alice", "s3cret"),
        ],
    );
    assert_pulled(&home.pull(&format!("{host}/team/app:v1"), &[]));
    assert_auth_failure(&home.pull(&format!("{host}/other/app:v1"), &[]));
}

#[tokio::test]
async fn keys_with_a_scheme_name_their_host() {
    let env = Env::start(RegistryOptions::plain().basic("alice", "s3cret")).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    let host = env.host();
    let reference = format!("{host}/team/app:v1");
    let home = Home::new();
    for key in [
        format!("https://{host}"),
        format!("https://{host}/"),
        format!("http://{host}/v1/"),
    ] {
        auth_file(&home.docker_file(), &[(&key, "alice", "s3cret")]);
        assert_pulled(&home.pull(&reference, &[]));
    }
    // Docker's username/password form.
    std::fs::write(
        home.docker_file(),
        serde_json::json!({"auths": {host.clone(): {"username": "alice", "password": "s3cret"}}})
            .to_string(),
    )
    .unwrap();
    assert_pulled(&home.pull(&reference, &[]));
}

#[tokio::test]
async fn credential_sources_opt_out_and_name_files() {
    let env = Env::start(RegistryOptions::plain().basic("alice", "s3cret")).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    let host = env.host();
    let reference = format!("{host}/team/app:v1");
    let home = Home::new();
    auth_file(&home.docker_file(), &[(&host, "alice", "s3cret")]);
    assert_pulled(&home.pull(&reference, &[]));

    let off = home.p("off.json");
    std::fs::write(&off, r#"{"credentialSources": []}"#).unwrap();
    assert_auth_failure(&home.pull(&reference, &["--config", off.to_str().unwrap()]));

    // Only the named file is read, not the default places.
    let named = home.p("named/auth.json");
    auth_file(&named, &[(&host, "alice", "s3cret")]);
    auth_file(&home.docker_file(), &[(&host, "alice", "wrong")]);
    let only = home.p("only.json");
    std::fs::write(
        &only,
        serde_json::json!({ "credentialSources": [named] }).to_string(),
    )
    .unwrap();
    assert_pulled(&home.pull(&reference, &["--config", only.to_str().unwrap()]));

    // The library: nothing is read unless asked; named sources are.
    let cache = tempfile::tempdir().unwrap();
    let always = PullOptions {
        pull_policy: PullPolicy::Always,
        ..Default::default()
    };
    let r = env.reference("team/app:v1");
    let err = common::client_in(cache.path())
        .max_retries(1)
        .build()
        .unwrap()
        .pull(&r, &always)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), microsandbox_image::ErrorKind::Auth, "{err}");
    common::client_in(cache.path())
        .max_retries(1)
        .credential_sources([CredentialSource::Path(named)])
        .build()
        .unwrap()
        .pull(&r, &always)
        .await
        .unwrap();
}

/// A credential helper (`docker-credential-<name>`) in `dir` that prints `secret` on both
/// streams and exits with `code`.
fn helper(dir: &Path, name: &str, secret: &str, code: i32) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho 'helper says {secret}' >&2\n\
             echo '{{\"ServerURL\":\"x\",\"Username\":\"alice\",\"Secret\":\"{secret}\"}}'\n\
             exit {code}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn no_password_in_any_output_of_a_failing_pull() {
    const SECRET: &str = "Pa55-never-printed-7f3a";
    let env = Env::start(RegistryOptions::plain().basic("alice", "s3cret")).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    let host = env.host();
    let reference = format!("{host}/team/app:v1");
    let mut home = Home::new();
    let assert_clean = |what: &str, out: &str| {
        assert!(!out.contains(SECRET), "{what} shows the password:\n{out}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("alice:{SECRET}"));
        assert!(
            !out.contains(&b64),
            "{what} shows the encoded password:\n{out}"
        );
    };

    // A wrong password in auth.json.
    let file = home.p("raf/auth.json");
    auth_file(&file, &[(&host, "alice", SECRET)]);
    home.registry_auth_file = Some(file.clone());
    let o = home.pull(&reference, &[]);
    assert_auth_failure(&o);
    assert_clean("the CLI (wrong password)", &text(&o));
    let o = home.pull(&reference, &["--progress", "plain"]);
    assert_auth_failure(&o);
    assert_clean("the CLI, plain progress", &text(&o));

    // The library's error, shown and debugged.
    let cache = tempfile::tempdir().unwrap();
    let registry = common::client_in(cache.path())
        .max_retries(1)
        .credential_sources([CredentialSource::Path(file)])
        .build()
        .unwrap();
    assert_clean("the registry's Debug", &format!("{registry:?}"));
    let err = registry
        .pull(&env.reference("team/app:v1"), &PullOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), microsandbox_image::ErrorKind::Auth, "{err}");
    assert_clean("the error", &format!("{err} {err:?} {err:#?}"));

    // A credential helper that fails, and one whose password the registry refuses.
    let bin = home.p("bin");
    std::fs::create_dir_all(&bin).unwrap();
    helper(&bin, "msbfail", SECRET, 1);
    helper(&bin, "msbwrong", SECRET, 0);
    home.path_dirs.push(bin);
    home.registry_auth_file = None;
    std::fs::create_dir_all(home.p("docker")).unwrap();
    for name in ["msbfail", "msbwrong"] {
        std::fs::write(
            home.docker_file(),
            serde_json::json!({ "credHelpers": { host.clone(): name } }).to_string(),
        )
        .unwrap();
        let o = home.pull(&reference, &[]);
        assert_auth_failure(&o);
        assert_clean(&format!("the CLI (helper {name})"), &text(&o));
    }
}

#[tokio::test]
async fn a_bearer_token_is_sent_as_is() {
    let env = Env::start(RegistryOptions::plain()).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    let front = msbimage_testkit::RedirectFront::start(&env.registry.base_url())
        .await
        .unwrap();
    let r = format!("{}/team/app:v1", front.host()).parse().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = common::client_in(cache.path())
        .auth(microsandbox_image::RegistryAuth::Bearer {
            token: "tok-7f3a".into(),
        })
        .build()
        .unwrap();
    registry.pull(&r, &PullOptions::default()).await.unwrap();
    let reqs = front.requests();
    assert!(!reqs.is_empty());
    for req in &reqs {
        assert_eq!(
            req.header("authorization"),
            Some("Bearer tok-7f3a"),
            "{req:?}"
        );
    }
    for req in &front.blob_host_requests() {
        assert!(req.header("authorization").is_none(), "{req:?}");
    }
    assert!(!format!("{registry:?}").contains("tok-7f3a"));
}
