//! Real docker-registry processes in each variant (plain, TLS, htpasswd, pull-through
//! proxy) accept the harness's pushes and serve back exactly the bytes pushed.

mod support;

use msbimage_testkit::fixtures::{multiplatform, standard_image, standard_image_with};
use msbimage_testkit::{Compression, Image, ManifestFormat, Pusher, Registry, RegistryOptions};
use support::{basic, client, get_blob, get_manifest};

/// Checks manifest, config and every layer of `image` under `repo:tag`.
async fn assert_image_served(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    image: &Image,
    auth: Option<&str>,
) {
    let m = get_manifest(c, base, repo, tag, auth).await;
    assert_eq!(m.status, 200, "manifest {repo}:{tag}");
    assert_eq!(m.body, image.manifest);
    assert_eq!(
        m.digest_header.as_deref(),
        Some(image.manifest_digest.as_str())
    );
    assert_eq!(
        m.content_type.as_deref(),
        Some(image.manifest_media_type.as_str())
    );
    let cfg = get_blob(c, base, repo, &image.config_digest, auth).await;
    assert_eq!(cfg.status, 200);
    assert_eq!(cfg.body, image.config);
    for layer in &image.layers {
        let b = get_blob(c, base, repo, &layer.digest, auth).await;
        assert_eq!(b.status, 200);
        assert_eq!(msbimage_testkit::sha256_digest(&b.body), layer.digest);
    }
}

#[tokio::test]
async fn plain_registry_round_trips_every_compression_and_format() {
    let reg = Registry::start(RegistryOptions::plain()).await.unwrap();
    assert!(reg.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(reg.ca_pem_path(), None);
    let pusher = Pusher::new(&reg.base_url());
    let c = client(None);
    for (tag, comp) in [
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("none", Compression::None),
    ] {
        let image = standard_image(comp);
        pusher
            .push_image("fixtures/standard", tag, &image)
            .await
            .unwrap();
        assert_image_served(&c, &reg.base_url(), "fixtures/standard", tag, &image, None).await;
    }
    let docker = standard_image_with(Compression::Gzip, ManifestFormat::DockerV2);
    pusher
        .push_image("fixtures/docker", "v2", &docker)
        .await
        .unwrap();
    assert_image_served(&c, &reg.base_url(), "fixtures/docker", "v2", &docker, None).await;
    // Pushing again is a no-op for blobs (HEAD finds them) and still succeeds.
    pusher
        .push_image("fixtures/docker", "v2", &docker)
        .await
        .unwrap();
    assert!(reg.log().contains("/v2/fixtures/docker/manifests/v2"));
}

#[tokio::test]
async fn plain_registry_serves_multiplatform_index_and_children() {
    let reg = Registry::start(RegistryOptions::plain()).await.unwrap();
    let pusher = Pusher::new(&reg.base_url());
    let c = client(None);
    for format in [ManifestFormat::Oci, ManifestFormat::DockerV2] {
        let mp = multiplatform(format);
        let tag = format!("{format:?}").to_lowercase();
        pusher
            .push_index("fixtures/multi", &tag, &mp.index, &mp.all_images())
            .await
            .unwrap();
        let idx = get_manifest(&c, &reg.base_url(), "fixtures/multi", &tag, None).await;
        assert_eq!(idx.status, 200);
        assert_eq!(idx.body, mp.index.bytes);
        assert_eq!(idx.digest_header.as_deref(), Some(mp.index.digest.as_str()));
        assert_eq!(
            idx.content_type.as_deref(),
            Some(mp.index.media_type.as_str())
        );
        for image in mp.all_images() {
            let m = get_manifest(
                &c,
                &reg.base_url(),
                "fixtures/multi",
                &image.manifest_digest,
                None,
            )
            .await;
            assert_eq!(m.status, 200);
            assert_eq!(m.body, image.manifest);
        }
    }
}

#[tokio::test]
async fn tls_registry_needs_its_test_ca() {
    let reg = Registry::start(RegistryOptions::plain().tls())
        .await
        .unwrap();
    assert!(reg.base_url().starts_with("https://127.0.0.1:"));
    let ca = reg
        .ca_pem_path()
        .expect("TLS registry has a CA")
        .to_path_buf();
    let untrusting = msbimage_testkit::tls::client_builder()
        .no_proxy()
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{}/v2/", reg.base_url()))
            .send()
            .await
            .is_err()
    );
    let c = client(Some(&ca));
    let ping = c
        .get(format!("{}/v2/", reg.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    // The leaf is valid for "localhost" too.
    let by_name = format!(
        "https://localhost:{}/v2/",
        reg.host().rsplit(':').next().unwrap()
    );
    assert_eq!(c.get(by_name).send().await.unwrap().status(), 200);

    let image = standard_image(Compression::Gzip);
    Pusher::new(&reg.base_url())
        .with_ca(&ca)
        .push_image("tls/image", "latest", &image)
        .await
        .unwrap();
    assert_image_served(&c, &reg.base_url(), "tls/image", "latest", &image, None).await;
}

#[tokio::test]
async fn basic_auth_registry_checks_credentials() {
    let reg = Registry::start(RegistryOptions::plain().basic("alice", "s3cret"))
        .await
        .unwrap();
    let c = client(None);
    let ping = c
        .get(format!("{}/v2/", reg.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 401);
    let challenge = ping.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    let wrong = c
        .get(format!("{}/v2/", reg.base_url()))
        .header("authorization", basic("alice", "nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let image = standard_image(Compression::Zstd);
    let anonymous = Pusher::new(&reg.base_url())
        .push_image("auth/image", "v1", &image)
        .await;
    assert_eq!(anonymous.unwrap_err().status(), Some(401));
    Pusher::new(&reg.base_url())
        .with_basic("alice", "s3cret")
        .push_image("auth/image", "v1", &image)
        .await
        .unwrap();
    let auth = basic("alice", "s3cret");
    assert_image_served(&c, &reg.base_url(), "auth/image", "v1", &image, Some(&auth)).await;
    let anon = get_manifest(&c, &reg.base_url(), "auth/image", "v1", None).await;
    assert_eq!(anon.status, 401);
}

#[tokio::test]
async fn proxy_registry_mirrors_its_upstream() {
    let upstream = Registry::start(RegistryOptions::plain()).await.unwrap();
    let image = standard_image(Compression::Gzip);
    Pusher::new(&upstream.base_url())
        .push_image("library/mirrored", "1.0", &image)
        .await
        .unwrap();
    let mirror = Registry::start(RegistryOptions::plain().proxy(&upstream.base_url()))
        .await
        .unwrap();
    let c = client(None);
    assert_image_served(
        &c,
        &mirror.base_url(),
        "library/mirrored",
        "1.0",
        &image,
        None,
    )
    .await;
    // The mirror fetched from the upstream (its access log shows the mirror's requests).
    assert!(
        upstream
            .log()
            .contains("/v2/library/mirrored/manifests/1.0")
    );
    // Proxies refuse pushes.
    let push = Pusher::new(&mirror.base_url())
        .push_image("library/other", "1", &image)
        .await;
    assert!(push.is_err());
}

#[tokio::test]
async fn dropping_a_registry_stops_it() {
    let reg = Registry::start(RegistryOptions::plain()).await.unwrap();
    let url = format!("{}/v2/", reg.base_url());
    let dir = reg.storage_dir().parent().unwrap().to_path_buf();
    assert!(dir.exists());
    drop(reg);
    assert!(!dir.exists());
    assert!(client(None).get(url).send().await.is_err());
}

#[tokio::test]
async fn start_failures_are_explained() {
    let tokens = msbimage_testkit::TokenServer::start("svc", &[], true)
        .await
        .unwrap();
    let both = RegistryOptions::plain()
        .basic("a", "b")
        .token(tokens.auth_config());
    let err = Registry::start(both).await.err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    // A proxy whose upstream is down cannot start; the error quotes the registry's log.
    let err = Registry::start(RegistryOptions::plain().proxy("http://127.0.0.1:1"))
        .await
        .err()
        .expect("fails");
    let text = err.to_string();
    assert!(text.contains("registry log tail"), "{text}");
}
