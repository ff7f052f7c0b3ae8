//! The cases of `distribution/reference`'s test tables (`reference_test.go`: `TestReferenceParse`;
//! `normalize_test.go`: `TestValidateReferenceName`, `TestValidateRemoteName`,
//! `TestParseRepositoryInfo`, `TestParseReferenceWithTagAndDigest`), written as our own cases
//! for our normalising parser: every input they accept we accept with the same registry,
//! repository path, tag and digest (after Docker's normalisation: `docker.io`, `library/`,
//! and the tag `latest` when neither tag nor digest is given), and every input they refuse we
//! refuse. The one deliberate difference is listed in
//! [`deliberate_differences`].

use microsandbox_image::Reference;

const F64: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// `(registry, repository, tag, digest)` after normalisation.
type Parts = (String, String, Option<String>, Option<String>);

fn parts(r: &Reference) -> Parts {
    (
        r.registry().to_owned(),
        r.repository().to_owned(),
        r.tag().map(str::to_owned),
        r.digest().map(ToString::to_string),
    )
}

fn want(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Parts {
    (
        registry.to_owned(),
        repository.to_owned(),
        tag.map(str::to_owned),
        digest.map(str::to_owned),
    )
}

fn check(input: &str, expected: Option<Parts>) {
    let got = input.parse::<Reference>();
    match (expected, got) {
        (Some(want), Ok(r)) => {
            assert_eq!(parts(&r), want, "{input:?}");
            // The normalised form parses back to the same reference.
            assert_eq!(
                r.to_string().parse::<Reference>().as_ref(),
                Ok(&r),
                "{input:?}"
            );
        }
        (Some(want), Err(e)) => panic!("{input:?} refused ({e}), expected {want:?}"),
        (None, Ok(r)) => panic!("{input:?} accepted as {r}, expected an error"),
        (None, Err(_)) => {}
    }
}

const HUB: &str = "docker.io";
const LATEST: Option<&str> = Some("latest");

#[test]
fn reference_parse_table() {
    let a255 = "a".repeat(255);
    let deep = format!("{}a", "a/".repeat(127));
    let cases: Vec<(String, Option<Parts>)> = vec![
        (
            "test_com".into(),
            Some(want(HUB, "library/test_com", LATEST, None)),
        ),
        (
            "test.com:tag".into(),
            Some(want(HUB, "library/test.com", Some("tag"), None)),
        ),
        (
            "test.com:5000".into(),
            Some(want(HUB, "library/test.com", Some("5000"), None)),
        ),
        (
            "test.com/repo:tag".into(),
            Some(want("test.com", "repo", Some("tag"), None)),
        ),
        (
            "test:5000/repo".into(),
            Some(want("test:5000", "repo", LATEST, None)),
        ),
        (
            "test:5000/repo:tag".into(),
            Some(want("test:5000", "repo", Some("tag"), None)),
        ),
        (
            format!("test:5000/repo@{F64}"),
            Some(want("test:5000", "repo", None, Some(F64))),
        ),
        (
            format!("test:5000/repo:tag@{F64}"),
            Some(want("test:5000", "repo", Some("tag"), Some(F64))),
        ),
        ("".into(), None),
        (":justtag".into(), None),
        (format!("@{F64}"), None),
        (
            "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
            None,
        ),
        (format!("validname@invaliddigest:{}", &F64[7..]), None),
        ("Uppercase:tag".into(), None),
        ("test:5000/Uppercase/lowercase:tag".into(), None),
        (
            "lowercase:Uppercase".into(),
            Some(want(HUB, "library/lowercase", Some("Uppercase"), None)),
        ),
        (format!("domain/{}:tag", "a".repeat(256)), None),
        (
            format!("{deep}:tag-puts-this-over-max"),
            Some(want(HUB, &deep, Some("tag-puts-this-over-max"), None)),
        ),
        ("aa/asdf$$^/aa".into(), None),
        (
            "sub-dom1.foo.com/bar/baz/quux".into(),
            Some(want("sub-dom1.foo.com", "bar/baz/quux", LATEST, None)),
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            Some(want(
                "sub-dom1.foo.com",
                "bar/baz/quux",
                Some("some-long-tag"),
                None,
            )),
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            Some(want(
                "b.gcr.io",
                "test.example.com/my-app",
                Some("test.example.com"),
                None,
            )),
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com".into(),
            Some(want("xn--n3h.com", "myimage", Some("xn--n3h.com"), None)),
        ),
        (
            format!("xn--7o8h.com/myimage:xn--7o8h.com@{F64}"),
            Some(want(
                "xn--7o8h.com",
                "myimage",
                Some("xn--7o8h.com"),
                Some(F64),
            )),
        ),
        (
            "foo_bar.com:8080".into(),
            Some(want(HUB, "library/foo_bar.com", Some("8080"), None)),
        ),
        (
            "foo/foo_bar.com:8080".into(),
            Some(want(HUB, "foo/foo_bar.com", Some("8080"), None)),
        ),
        (
            "192.168.1.1".into(),
            Some(want(HUB, "library/192.168.1.1", LATEST, None)),
        ),
        (
            "192.168.1.1:tag".into(),
            Some(want(HUB, "library/192.168.1.1", Some("tag"), None)),
        ),
        (
            "192.168.1.1:5000".into(),
            Some(want(HUB, "library/192.168.1.1", Some("5000"), None)),
        ),
        (
            "192.168.1.1/repo".into(),
            Some(want("192.168.1.1", "repo", LATEST, None)),
        ),
        (
            "192.168.1.1:5000/repo".into(),
            Some(want("192.168.1.1:5000", "repo", LATEST, None)),
        ),
        (
            "192.168.1.1:5000/repo:5050".into(),
            Some(want("192.168.1.1:5000", "repo", Some("5050"), None)),
        ),
        ("[2001:db8::1]".into(), None),
        ("[2001:db8::1]:5000".into(), None),
        ("[2001:db8::1]:tag".into(), None),
        (
            "[2001:db8::1]/repo".into(),
            Some(want("[2001:db8::1]", "repo", LATEST, None)),
        ),
        (
            "[2001:db8:1:2:3:4:5:6]/repo:tag".into(),
            Some(want("[2001:db8:1:2:3:4:5:6]", "repo", Some("tag"), None)),
        ),
        (
            "[2001:db8::1]:5000/repo".into(),
            Some(want("[2001:db8::1]:5000", "repo", LATEST, None)),
        ),
        (
            "[2001:db8::1]:5000/repo:tag".into(),
            Some(want("[2001:db8::1]:5000", "repo", Some("tag"), None)),
        ),
        (
            format!("[2001:db8::1]:5000/repo@{F64}"),
            Some(want("[2001:db8::1]:5000", "repo", None, Some(F64))),
        ),
        (
            format!("[2001:db8::1]:5000/repo:tag@{F64}"),
            Some(want("[2001:db8::1]:5000", "repo", Some("tag"), Some(F64))),
        ),
        (
            "[2001:db8::]:5000/repo".into(),
            Some(want("[2001:db8::]:5000", "repo", LATEST, None)),
        ),
        (
            "[::1]:5000/repo".into(),
            Some(want("[::1]:5000", "repo", LATEST, None)),
        ),
        ("[fe80::1%eth0]:5000/repo".into(), None),
        ("[fe80::1%@invalidzone]:5000/repo".into(), None),
        (
            format!("example.com/{a255}:tag"),
            Some(want("example.com", &a255, Some("tag"), None)),
        ),
    ];
    for (input, expected) in cases {
        check(&input, expected);
    }
}

#[test]
fn validate_reference_name_table() {
    let valid = [
        "docker/docker",
        "library/debian",
        "debian",
        "localhost/library/debian",
        "localhost/debian",
        "LOCALDOMAIN/library/debian",
        "LOCALDOMAIN/debian",
        "docker.io/docker/docker",
        "docker.io/library/debian",
        "docker.io/debian",
        "index.docker.io/docker/docker",
        "index.docker.io/library/debian",
        "index.docker.io/debian",
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000/debian",
        "192.168.0.1",
        "192.168.0.1:80",
        "192.168.0.1:8/debian",
        "192.168.0.2:25000/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker/docker",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "Docker/docker",
        "DOCKER/docker",
    ];
    for name in valid {
        assert!(name.parse::<Reference>().is_ok(), "{name:?} refused");
    }
    let invalid = [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    ];
    for name in invalid {
        assert!(name.parse::<Reference>().is_err(), "{name:?} accepted");
    }
}

#[test]
fn validate_remote_name_table() {
    let valid = [
        "docker/docker",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker-rules/docker",
        "docker---rules/docker",
        "doc/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
    ];
    for name in valid {
        assert!(name.parse::<Reference>().is_ok(), "{name:?} refused");
    }
    let long_namespace = format!(
        "{}/docker",
        "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_".repeat(4)
    );
    let invalid = [
        "docker/Docker",
        "docker///docker",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "-docker/docker",
        "docker-/docker",
        "-docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        &long_namespace,
    ];
    for name in invalid {
        assert!(name.parse::<Reference>().is_err(), "{name:?} accepted");
    }
}

#[test]
fn parse_repository_info_table() {
    // (spellings, registry, repository): every spelling normalises to the same name.
    let cases: [(&[&str], &str, &str); 18] = [
        (&["localhost/fooo"], "localhost", "fooo"),
        (&["localhost/fooo/bar"], "localhost", "fooo/bar"),
        (&["LOCALDOMAIN/fooo"], "LOCALDOMAIN", "fooo"),
        (&["LOCALDOMAIN/fooo/bar"], "LOCALDOMAIN", "fooo/bar"),
        (
            &["fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"],
            HUB,
            "fooo/bar",
        ),
        (
            &["ubuntu", "docker.io/library/ubuntu", "library/ubuntu"],
            HUB,
            "library/ubuntu",
        ),
        (
            &["nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"],
            HUB,
            "nonlibrary/ubuntu",
        ),
        (
            &["other/library", "docker.io/other/library"],
            HUB,
            "other/library",
        ),
        (
            &["127.0.0.1:8000/private/moonbase"],
            "127.0.0.1:8000",
            "private/moonbase",
        ),
        (
            &["127.0.0.1:8000/privatebase"],
            "127.0.0.1:8000",
            "privatebase",
        ),
        (
            &["example.com/private/moonbase"],
            "example.com",
            "private/moonbase",
        ),
        (&["example.com/privatebase"], "example.com", "privatebase"),
        (
            &["example.com:8000/private/moonbase"],
            "example.com:8000",
            "private/moonbase",
        ),
        (
            &["example.com:8000/privatebasee"],
            "example.com:8000",
            "privatebasee",
        ),
        (
            &[
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "index.docker.io/library/ubuntu-12.04-base",
            ],
            HUB,
            "library/ubuntu-12.04-base",
        ),
        (
            &["foo", "docker.io/library/foo", "docker.io/foo"],
            HUB,
            "library/foo",
        ),
        (
            &["library/foo/bar", "docker.io/library/foo/bar"],
            HUB,
            "library/foo/bar",
        ),
        (
            &["store/foo/bar", "docker.io/store/foo/bar"],
            HUB,
            "store/foo/bar",
        ),
    ];
    for (spellings, registry, repository) in cases {
        for s in spellings {
            check(s, Some(want(registry, repository, LATEST, None)));
        }
    }
    for host in ["Foo", "FOO"] {
        let r: Reference = format!("{host}/bar").parse().expect("uppercase host");
        assert_eq!((r.registry(), r.repository()), (host, "bar"));
        assert_eq!(r.to_string(), format!("{host}/bar:latest"));
    }
}

#[test]
fn parse_reference_with_tag_and_digest() {
    let short =
        "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
    let r: Reference = short.parse().expect("tag and digest");
    assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
    assert_eq!(r.tag(), Some("latest"));
    assert!(r.digest().is_some());
    // `TestInvalidReferenceComponents`: a bad name is refused.
    assert!("-foo".parse::<Reference>().is_err());
}

/// Where we differ from `distribution/reference` on purpose.
#[test]
fn deliberate_differences() {
    // `sha512` is registered by the OCI image spec; their test binary registers only sha256.
    let sha512 = format!("validname@sha512:{}", "f".repeat(128));
    assert!(sha512.parse::<Reference>().is_ok());
}
