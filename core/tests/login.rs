//! `msbimage login` / `logout` against real registries on loopback (htpasswd and a token
//! server): the credentials are checked first (a wrong password writes nothing), kept in
//! Podman's `auth.json` (mode 0600, other entries and keys kept; `podman login --get-login`
//! reads it) or in a configured credential helper, found by the next pull, and removed again;
//! `pull --authfile` and `--no-stored-credentials` choose what a pull reads.
//!
//! The CLI runs as a child process with an environment of its own.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use common::{Env, assert_exit as assert_code, output_text as text};
use msbimage_testkit::{RegistryOptions, TokenFlow, TokenServer};
use serde_json::{Value, json};

const SECRET: &str = "s3cret-91d4";

/// A home for the CLI: `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME`, `DOCKER_CONFIG` and `HOME`
/// under one temporary directory, and extra `PATH` directories (credential helpers).
struct Home {
    dir: tempfile::TempDir,
    path_dirs: Vec<PathBuf>,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            path_dirs: Vec::new(),
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// Where `podman login` writes: `$XDG_RUNTIME_DIR/containers/auth.json`.
    fn podman_file(&self) -> PathBuf {
        self.p("run/containers/auth.json")
    }

    /// `msbimage ARGS` with `stdin` piped in.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = common::cli_in_home(self.dir.path(), &self.path_dirs)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run msbimage");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn login(&self, host: &str, user: &str, password: &str, extra: &[&str]) -> Output {
        let mut args = vec!["login", "--username", user, "--password-stdin"];
        args.extend_from_slice(extra);
        args.push(host);
        self.run(&args, &format!("{password}\n"))
    }

    fn pull(&self, reference: &str, extra: &[&str]) -> Output {
        let cache = tempfile::tempdir().unwrap();
        let mut args = vec!["pull", reference, "--progress", "none", "--cache"];
        args.push(cache.path().to_str().unwrap());
        args.extend_from_slice(extra);
        self.run(&args, "")
    }
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert_code(o, 0);
}

/// No output of `o` shows `secret`.
#[track_caller]
fn assert_hidden(o: &Output, secret: &str) {
    assert!(!text(o).contains(secret), "{}", text(o));
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// An htpasswd registry with `team/app:v1` pushed.
async fn htpasswd_registry() -> Env {
    let env = Env::start(RegistryOptions::plain().basic("alice", SECRET)).await;
    env.push("team/app", "v1", &common::one_layer_image()).await;
    env
}

#[tokio::test]
async fn login_keeps_credentials_where_podman_does_and_logout_removes_them() {
    let env = htpasswd_registry().await;
    let host = env.host();
    let reference = format!("{host}/team/app:v1");
    let home = Home::new();
    let file = home.podman_file();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let before = json!({
        "auths": {"other.example": {"auth": b64("bob:hunter2")}},
        "x-unknown-key": {"kept": true}
    });
    std::fs::write(&file, serde_json::to_vec_pretty(&before).unwrap()).unwrap();
    let before_bytes = std::fs::read(&file).unwrap();
    assert_code(&home.pull(&reference, &[]), 5);

    // A wrong password: an auth error, and the file is untouched.
    let wrong = home.login(&host, "alice", "not-the-password", &[]);
    assert_code(&wrong, 5);
    assert_hidden(&wrong, "not-the-password");
    assert_eq!(std::fs::read(&file).unwrap(), before_bytes);

    let ok = home.login(&host, "alice", SECRET, &[]);
    assert_ok(&ok);
    assert_hidden(&ok, SECRET);
    let doc = read_json(&file);
    assert_eq!(doc["auths"][&host]["auth"], b64(&format!("alice:{SECRET}")));
    assert_eq!(
        doc["auths"]["other.example"],
        before["auths"]["other.example"]
    );
    assert_eq!(doc["x-unknown-key"], before["x-unknown-key"]);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["auth.json"], "no temporary file left");

    // Podman reads what we wrote.
    let podman = Command::new("podman")
        .args(["login", "--get-login", &host, "--authfile"])
        .arg(&file)
        .output()
        .expect("podman");
    assert!(podman.status.success(), "{}", text(&podman));
    assert_eq!(String::from_utf8_lossy(&podman.stdout).trim(), "alice");

    // The next pull finds them.
    assert_ok(&home.pull(&reference, &[]));

    // Logout removes this registry's entry only; a second logout has nothing to remove.
    assert_ok(&home.run(&["logout", &host], ""));
    let doc = read_json(&file);
    assert!(doc["auths"].get(&host).is_none(), "{doc}");
    assert_eq!(
        doc["auths"]["other.example"],
        before["auths"]["other.example"]
    );
    assert_code(&home.pull(&reference, &[]), 5);
    assert_code(&home.run(&["logout", &host], ""), 11);

    // --all empties `auths`, other keys stay.
    assert_ok(&home.login(&host, "alice", SECRET, &[]));
    assert_ok(&home.run(&["logout", "--all"], ""));
    let doc = read_json(&file);
    assert_eq!(doc["auths"], json!({}));
    assert_eq!(doc["x-unknown-key"], before["x-unknown-key"]);
}

#[tokio::test]
async fn authfile_and_no_stored_credentials_choose_what_a_pull_reads() {
    let env = htpasswd_registry().await;
    let host = env.host();
    let reference = format!("{host}/team/app:v1");
    let home = Home::new();
    let named = home.p("named/auth.json");
    let named_s = named.to_str().unwrap();
    assert_ok(&home.login(&host, "alice", SECRET, &["--authfile", named_s]));
    assert!(!home.podman_file().exists());
    assert_eq!(
        std::fs::metadata(named.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700,
        "a directory made for the file is private"
    );
    assert_code(&home.pull(&reference, &[]), 5);
    assert_ok(&home.pull(&reference, &["--authfile", named_s]));

    assert_ok(&home.login(&host, "alice", SECRET, &[]));
    assert_ok(&home.pull(&reference, &[]));
    assert_code(&home.pull(&reference, &["--no-stored-credentials"]), 5);
}

// The token server runs in this process: the CLI children are waited for on a blocking
// call, so it needs a worker thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_token_server_then_pull() {
    let tokens = TokenServer::start("login.test", &[("carol", SECRET)], false)
        .await
        .unwrap();
    let env = Env::start(RegistryOptions::plain().token(tokens.auth_config()))
        .await
        .push_as("carol", SECRET);
    env.push("team/app", "v1", &common::one_layer_image()).await;
    let host = env.host();
    let home = Home::new();

    let before = tokens.requests().len();
    assert_code(&home.login(&host, "carol", "wrong", &[]), 5);
    assert!(!home.podman_file().exists(), "nothing written");
    assert_ok(&home.login(&host, "carol", SECRET, &[]));
    let reqs: Vec<_> = tokens.requests().into_iter().skip(before).collect();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r.flow, TokenFlow::Get);
        assert_eq!(r.user.as_deref(), Some("carol"));
        assert!(r.scopes.is_empty(), "login asks for no scope: {r:?}");
    }
    assert_eq!((reqs[0].status, reqs[1].status), (401, 200));

    assert_ok(&home.pull(&format!("{host}/team/app:v1"), &[]));
    let last = tokens.requests().pop().unwrap();
    assert_eq!(last.user.as_deref(), Some("carol"));
    assert_eq!(last.scopes, ["repository:team/app:pull"]);
}

/// `docker-credential-test` in `dir`: `store` keeps its stdin in `dir/store.json`, `get`
/// prints it, `erase` removes it; every call is logged to `dir/calls`.
fn helper_script(dir: &Path) {
    let path = dir.join("docker-credential-test");
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             echo \"$1\" >> '{d}/calls'\n\
             case \"$1\" in\n\
             store) cat > '{d}/store.json' ;;\n\
             get) cat > /dev/null; [ -f '{d}/store.json' ] || exit 1; cat '{d}/store.json' ;;\n\
             erase) cat > /dev/null; rm -f '{d}/store.json' ;;\n\
             *) exit 2 ;;\n\
             esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn a_configured_credential_helper_stores_gets_and_erases() {
    let env = htpasswd_registry().await;
    let host = env.host();
    let reference = format!("{host}/team/app:v1");
    let mut home = Home::new();
    let helpers = home.p("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    helper_script(&helpers);
    home.path_dirs.push(helpers.clone());
    std::fs::create_dir_all(home.p("docker")).unwrap();
    std::fs::write(home.p("docker/config.json"), r#"{"credsStore": "test"}"#).unwrap();

    assert_code(&home.login(&host, "alice", "wrong", &[]), 5);
    assert!(!helpers.join("calls").exists(), "the helper is not asked");
    let ok = home.login(&host, "alice", SECRET, &[]);
    assert_ok(&ok);
    assert!(String::from_utf8_lossy(&ok.stderr).contains("docker-credential-test"));
    assert!(!home.podman_file().exists(), "the helper, not the file");
    let stored = read_json(&helpers.join("store.json"));
    assert_eq!(
        stored,
        json!({"ServerURL": host, "Username": "alice", "Secret": SECRET})
    );

    assert_ok(&home.pull(&reference, &[]));
    assert_ok(&home.run(&["logout", &host], ""));
    assert!(!helpers.join("store.json").exists());
    let calls = std::fs::read_to_string(helpers.join("calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.first(), Some(&"store"));
    assert!(calls.contains(&"get"), "{calls:?}");
    assert_eq!(calls.last(), Some(&"erase"));
    assert_code(&home.pull(&reference, &[]), 5);
}

#[tokio::test]
async fn the_library_logs_in_and_out() {
    use microsandbox_image::auth::{self, CredentialTarget, StoredIn};
    let env = htpasswd_registry().await;
    let host = env.host();
    let dir = tempfile::tempdir().unwrap();
    let target = CredentialTarget::file(dir.path().join("auth.json"));
    let config = microsandbox_image::RegistryConfig::default();
    let err = auth::login(&config, &host, "alice", "wrong-77", &target)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), microsandbox_image::ErrorKind::Auth, "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-77"));
    let stored = auth::login(
        &config,
        &format!("http://{host}/"),
        "alice",
        SECRET,
        &target,
    )
    .await
    .unwrap();
    assert_eq!(stored, StoredIn::File(target.auth_file.clone()));
    let doc = read_json(&target.auth_file);
    assert_eq!(doc["auths"][&host]["auth"], b64(&format!("alice:{SECRET}")));
    assert!(auth::logout(&host, &target).unwrap());
    assert!(!auth::logout(&host, &target).unwrap());
    assert!(auth::login(&config, "", "a", "b", &target).await.is_err());
}
