//! Mirrors, locations and blocked registries from configuration files: containers'
//! `registries.conf`, containerd's `hosts.toml` directories, and our own `config.toml`
//! (through the CLI). Mirrors are real `docker-registry` processes, pull-through caches
//! (proxy mode) in front of a second registry.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use microsandbox_image::{Digest, ErrorKind, Reference, RegistryBuilder};
use msbimage_testkit::{
    Compression, Pusher, Registry as TestRegistry, RegistryOptions, standard_image,
};

/// Blobs a registry holds (proxy fills happen after the response: wait a little for them).
async fn blobs_in(storage: &Path, at_least: usize) -> usize {
    let count = || {
        let dir = storage.join("docker/registry/v2/blobs/sha256");
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|p| std::fs::read_dir(p.path()).map(|d| d.count()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    for _ in 0..50 {
        if count() >= at_least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    count()
}

async fn upstream_with_image() -> TestRegistry {
    let upstream = TestRegistry::start(RegistryOptions::plain()).await.unwrap();
    Pusher::new(&upstream.base_url())
        .push_image("team/app", "v1", &standard_image(Compression::Gzip))
        .await
        .unwrap();
    upstream
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Pulls `r` into a fresh cache with `registries.conf` = `conf`; the manifest digest.
async fn pull_with_conf(r: &Reference, conf: &Path) -> microsandbox_image::Result<Digest> {
    let configure = |b: RegistryBuilder| {
        b.registries_conf("/nonexistent/registries.conf")
            .registries_conf(conf)
    };
    Ok(common::pull_fresh(configure, r).await?.manifest_digest)
}

#[tokio::test]
async fn a_mirror_from_registries_conf_fills_and_then_serves_alone() {
    let mut upstream = upstream_with_image().await;
    let proxy = TestRegistry::start(RegistryOptions::plain().proxy(&upstream.base_url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "registries.conf",
        &format!(
            "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nprefix = \"{}\"\n\n\
             [[registry.mirror]]\nlocation = \"{}\"\n",
            upstream.host(),
            proxy.host()
        ),
    );
    let r: Reference = format!("{}/team/app:v1", upstream.host()).parse().unwrap();
    let first = pull_with_conf(&r, &conf).await.unwrap();
    assert!(
        blobs_in(proxy.storage_dir(), 4).await >= 4,
        "the pull went through the mirror"
    );

    upstream.stop();
    let second = pull_with_conf(&r, &conf).await.unwrap();
    assert_eq!(first, second);
}

#[tokio::test]
async fn mirrors_fall_back_in_order_to_the_location() {
    let upstream = upstream_with_image().await;
    // Up but without the image (404), and down (connection refused).
    let empty = TestRegistry::start(RegistryOptions::plain()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "registries.conf",
        &format!(
            "[[registry]]\nprefix = \"example.test/team\"\nlocation = \"{}/team\"\n\
             [[registry.mirror]]\nlocation = \"127.0.0.1:9\"\n\
             [[registry.mirror]]\nlocation = \"{}/elsewhere\"\n",
            upstream.host(),
            empty.host()
        ),
    );
    // `example.test` does not exist: only the location rewriting reaches the upstream.
    let r: Reference = "example.test/team/app:v1".parse().unwrap();
    pull_with_conf(&r, &conf).await.unwrap();
    assert!(
        empty.log().contains("/v2/elsewhere/app/manifests/v1"),
        "the empty mirror was asked"
    );
}

#[tokio::test]
async fn digest_only_mirrors_do_not_answer_tags() {
    let upstream = upstream_with_image().await;
    // A mirror holding another image under the same name: who answered shows in the digest.
    let mirror = TestRegistry::start(RegistryOptions::plain()).await.unwrap();
    Pusher::new(&mirror.base_url())
        .push_image("team/app", "v1", &standard_image(Compression::Zstd))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf_with = |policy: &str| {
        write(
            dir.path(),
            &format!("{policy}.conf"),
            &format!(
                "[[registry]]\nprefix = \"{}\"\n[[registry.mirror]]\nlocation = \"{}\"\n\
                 pull-from-mirror = \"{policy}\"\n",
                upstream.host(),
                mirror.host()
            ),
        )
    };
    let r: Reference = format!("{}/team/app:v1", upstream.host()).parse().unwrap();
    let from_upstream = pull_with_conf(&r, &conf_with("digest-only")).await.unwrap();
    let from_mirror = pull_with_conf(&r, &conf_with("all")).await.unwrap();
    assert_ne!(from_upstream, from_mirror);
    let tag_only = pull_with_conf(&r, &conf_with("tag-only")).await.unwrap();
    assert_eq!(tag_only, from_mirror);
    // By digest, a digest-only mirror is asked (and, lacking it, falls through).
    let pinned = r.with_digest(from_upstream.clone());
    assert_eq!(
        pull_with_conf(&pinned, &conf_with("digest-only"))
            .await
            .unwrap(),
        from_upstream
    );
    assert!(
        mirror
            .log()
            .contains(&format!("/manifests/{from_upstream}"))
    );
}

#[tokio::test]
async fn a_blocked_prefix_is_refused_naming_the_file() {
    let upstream = upstream_with_image().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "registries.conf",
        &format!("[[registry]]\nprefix = \"{}\"\n", upstream.host()),
    );
    // The block comes from a drop-in.
    write(
        dir.path(),
        "registries.conf.d/50-block.conf",
        &format!(
            "[[registry]]\nprefix = \"{}/team\"\nblocked = true\n",
            upstream.host()
        ),
    );
    let conf = dir.path().join("registries.conf");
    let r: Reference = format!("{}/team/app:v1", upstream.host()).parse().unwrap();
    let err = pull_with_conf(&r, &conf).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RegistryBlocked, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("50-block.conf") && msg.contains("team/app"),
        "{msg}"
    );
    assert!(
        !upstream.log().contains("GET /v2/team/app/manifests"),
        "nothing was asked"
    );

    // A sibling namespace is not under the prefix.
    Pusher::new(&upstream.base_url())
        .push_image("teamx/app", "v1", &standard_image(Compression::Gzip))
        .await
        .unwrap();
    let other: Reference = format!("{}/teamx/app:v1", upstream.host()).parse().unwrap();
    pull_with_conf(&other, &conf).await.unwrap();
}

#[tokio::test]
async fn malformed_registries_conf_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "registries.conf",
        "[[registry]]\nprefix = \"a.example\"\nmirror = \"b.example\"\n",
    );
    let err = pull_with_conf(&"a.example/x:1".parse().unwrap(), &conf)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let msg = err.to_string();
    assert!(
        msg.contains("registries.conf") && msg.contains("line 3"),
        "{msg}"
    );
}

#[tokio::test]
async fn hosts_toml_mirror_with_its_ca_then_the_server() {
    let upstream = upstream_with_image().await;
    let proxy = TestRegistry::start(RegistryOptions::plain().tls().proxy(&upstream.base_url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        proxy.ca_pem_path().unwrap(),
        dir.path().join("mirror-ca.pem"),
    )
    .unwrap();
    // The registry's directory: its name is the reference's registry.
    write(
        dir.path(),
        &format!("{}/hosts.toml", upstream.host()),
        &format!(
            "server = \"http://{}\"\n\n[host.\"https://{}\"]\n  capabilities = [\"pull\", \
             \"resolve\"]\n  ca = \"../mirror-ca.pem\"\n",
            upstream.host(),
            proxy.host()
        ),
    );
    let r: Reference = format!("{}/team/app:v1", upstream.host()).parse().unwrap();
    common::pull_fresh(|b| b.hosts_dir(dir.path()), &r)
        .await
        .unwrap();
    assert!(
        blobs_in(proxy.storage_dir(), 4).await >= 4,
        "the pull went through the mirror"
    );

    // A mirror that is down: the server answers.
    write(
        dir.path(),
        &format!("{}/hosts.toml", upstream.host()),
        &format!(
            "server = \"http://{}\"\n[host.\"https://127.0.0.1:9\"]\n",
            upstream.host()
        ),
    );
    common::pull_fresh(|b| b.hosts_dir(dir.path()), &r)
        .await
        .unwrap();
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;

    #[tokio::test]
    async fn config_toml_reaches_the_cli() {
        let upstream = upstream_with_image().await;
        let home = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let reference = format!("{}/team/app:v1", upstream.host());
        let conf = write(
            home.path(),
            "block.conf",
            &format!(
                "[[registry]]\nprefix = \"{}\"\nblocked = true\n",
                upstream.host()
            ),
        );
        // Our config.toml at its default place names the registries.conf.
        write(
            home.path(),
            ".config/msbimage/config.toml",
            &format!(
                "registriesConf = [{:?}]\nmaxRetries = 0\n",
                conf.display().to_string()
            ),
        );
        let args = ["pull", &reference, "--progress", "none", "--cache"];
        let mut args: Vec<&str> = args.to_vec();
        let cache_s = cache.path().display().to_string();
        args.push(&cache_s);
        let o = common::msbimage_isolated(&args, home.path(), &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(i32::from(ErrorKind::RegistryBlocked.exit_code())),
            "{stderr}"
        );
        assert!(stderr.contains("block.conf"), "{stderr}");

        // MSBIMAGE_CONFIG names another file; an unknown key names itself, its file, its line.
        let bad = write(home.path(), "bad.toml", "maxRetries = 0\nmirors = {}\n");
        let o = common::msbimage_isolated(&args, home.path(), &[("MSBIMAGE_CONFIG", &bad)]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("bad.toml") && stderr.contains("mirors") && stderr.contains("line 2"),
            "{stderr}"
        );

        // A good one: the pull works.
        let good = write(
            home.path(),
            "good.toml",
            "maxRetries = 0\nconcurrency = 2\n",
        );
        let o = common::msbimage_isolated(&args, home.path(), &[("MSBIMAGE_CONFIG", &good)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
