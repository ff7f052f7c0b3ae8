//! The token server issues ES256 JWTs (x5c header) that a real docker-registry in token
//! mode accepts: anonymous pull works, anonymous push is refused, authenticated push
//! works, and every token request is recorded.

mod support;

use base64::Engine as _;
use msbimage_testkit::fixtures::standard_image;
use msbimage_testkit::{Compression, Pusher, Registry, RegistryOptions, TokenFlow, TokenServer};
use serde_json::Value;
use support::{client, get_blob, get_manifest};

const SERVICE: &str = "registry.test";

/// Fetches a token from `realm` for `scope`; returns (status, body JSON).
async fn fetch_token(
    c: &reqwest::Client,
    realm: &str,
    scope: &str,
    creds: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = c.get(format!("{realm}?service={SERVICE}&scope={scope}"));
    if let Some((u, p)) = creds {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The JWT's claims (middle segment).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn registry_accepts_tokens_anonymous_pull_and_authenticated_push() {
    let tokens = TokenServer::start(SERVICE, &[("alice", "wonderland")], true)
        .await
        .unwrap();
    let reg = Registry::start(RegistryOptions::plain().token(tokens.auth_config()))
        .await
        .unwrap();
    let c = client(None);

    // The registry challenges with our realm and service.
    let ping = c
        .get(format!("{}/v2/", reg.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 401);
    let challenge = ping.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("realm=\"{}\"", tokens.realm())));
    assert!(challenge.contains(&format!("service=\"{SERVICE}\"")));

    // Anonymous push: the token server grants pull only, so the registry refuses.
    let image = standard_image(Compression::Gzip);
    let anon = Pusher::new(&reg.base_url())
        .push_image("team/app", "v1", &image)
        .await;
    assert_eq!(anon.unwrap_err().status(), Some(401));

    // Authenticated push goes through.
    Pusher::new(&reg.base_url())
        .with_basic("alice", "wonderland")
        .push_image("team/app", "v1", &image)
        .await
        .unwrap();

    // Anonymous pull with a pull token.
    let (status, body) = fetch_token(&c, &tokens.realm(), "repository:team/app:pull", None).await;
    assert_eq!(status, 200);
    let jwt = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let cl = claims(jwt);
    assert_eq!(cl["aud"], SERVICE);
    assert_eq!(cl["access"][0]["name"], "team/app");
    assert_eq!(cl["access"][0]["actions"], serde_json::json!(["pull"]));
    let bearer = format!("Bearer {jwt}");
    let m = get_manifest(&c, &reg.base_url(), "team/app", "v1", Some(&bearer)).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body, image.manifest);
    let layer = &image.layers[2];
    let b = get_blob(
        &c,
        &reg.base_url(),
        "team/app",
        &layer.digest,
        Some(&bearer),
    )
    .await;
    assert_eq!(b.body, layer.blob);
    // A token for another repository does not open this one.
    let (_, other) = fetch_token(&c, &tokens.realm(), "repository:other:pull", None).await;
    let other = format!("Bearer {}", other["token"].as_str().unwrap());
    let denied = get_manifest(&c, &reg.base_url(), "team/app", "v1", Some(&other)).await;
    assert_eq!(denied.status, 401);

    // Requests were recorded: anonymous ones without Authorization, alice's with it.
    let reqs = tokens.requests();
    assert!(
        reqs.iter()
            .any(|r| !r.authorization_present && r.user.is_none())
    );
    let alice: Vec<_> = reqs
        .iter()
        .filter(|r| r.user.as_deref() == Some("alice"))
        .collect();
    assert!(!alice.is_empty());
    assert!(
        alice
            .iter()
            .all(|r| r.authorization_present && r.status == 200)
    );
    assert!(
        alice
            .iter()
            .any(|r| r.scopes == ["repository:team/app:pull,push"]
                && r.service.as_deref() == Some(SERVICE))
    );
}

#[tokio::test]
async fn token_server_refuses_bad_credentials_and_anonymous_when_closed() {
    let tokens = TokenServer::start(SERVICE, &[("bob", "builder")], false)
        .await
        .unwrap();
    let c = client(None);
    let scope = "repository:x:pull";
    let (anon, _) = fetch_token(&c, &tokens.realm(), scope, None).await;
    assert_eq!(anon, 401);
    let (wrong, _) = fetch_token(&c, &tokens.realm(), scope, Some(("bob", "nope"))).await;
    assert_eq!(wrong, 401);
    let (ok, body) = fetch_token(
        &c,
        &tokens.realm(),
        "repository:x:pull,push",
        Some(("bob", "builder")),
    )
    .await;
    assert_eq!(ok, 200);
    assert_eq!(
        claims(body["token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!(["pull", "push"])
    );

    tokens.set_expires_in(7);
    let (_, body) = fetch_token(&c, &tokens.realm(), scope, Some(("bob", "builder"))).await;
    assert_eq!(body["expires_in"], 7);
    let cl = claims(body["token"].as_str().unwrap());
    assert_eq!(cl["exp"].as_u64().unwrap() - cl["iat"].as_u64().unwrap(), 7);

    // OAuth2 password grant (POST) works too.
    let post = c
        .post(tokens.realm())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username=bob&password=builder&service={SERVICE}&scope={}",
            scope.replace(':', "%3A")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);

    let statuses: Vec<u16> = tokens.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 200, 200, 200]);
    let first = &tokens.requests()[0];
    assert!(!first.authorization_present);
    assert_eq!(first.scopes, [scope]);
}

/// POSTs an OAuth2 form to `realm`; returns (status, body JSON).
async fn post_form(c: &reqwest::Client, realm: &str, form: &str) -> (u16, Value) {
    let resp = c
        .post(realm)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn oauth2_refresh_grants_expiry_knobs_and_oauth_off() {
    let tokens = TokenServer::start(SERVICE, &[("alice", "pw")], false)
        .await
        .unwrap();
    tokens.add_refresh_token("rt-given", "alice");
    let c = client(None);
    let realm = tokens.realm();
    let scope = "repository%3Ateam%2Fapp%3Apull";

    // A configured refresh token buys a token and a new refresh token, which works too.
    let form = |rt: &str| {
        format!(
            "grant_type=refresh_token&refresh_token={rt}&service={SERVICE}&scope={scope}&client_id=t"
        )
    };
    let (status, body) = post_form(&c, &realm, &form("rt-given")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["sub"],
        "alice"
    );
    let rotated = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rotated, "rt-given");
    assert_eq!(post_form(&c, &realm, &form(&rotated)).await.0, 200);
    assert_eq!(post_form(&c, &realm, &form("rt-unknown")).await.0, 401);
    assert_eq!(post_form(&c, &realm, "grant_type=magic").await.0, 400);

    // A password grant asking for offline access gets a refresh token; without, none.
    let pw = format!("grant_type=password&username=alice&password=pw&service={SERVICE}");
    let (_, offline) = post_form(&c, &realm, &format!("{pw}&access_type=offline")).await;
    assert!(offline["refresh_token"].is_string(), "{offline}");
    let (_, online) = post_form(&c, &realm, &pw).await;
    assert!(online.get("refresh_token").is_none(), "{online}");

    let reqs = tokens.requests();
    let flows: Vec<_> = reqs.iter().map(|r| (r.flow, r.status)).collect();
    assert_eq!(
        flows,
        [
            (TokenFlow::OAuthRefresh, 200),
            (TokenFlow::OAuthRefresh, 200),
            (TokenFlow::OAuthRefresh, 401),
            (TokenFlow::OAuthOther, 400),
            (TokenFlow::OAuthPassword, 200),
            (TokenFlow::OAuthPassword, 200),
        ]
    );
    assert_eq!(reqs[0].refresh_token.as_deref(), Some("rt-given"));
    assert_eq!(reqs[0].client_id.as_deref(), Some("t"));
    assert_eq!(reqs[0].user.as_deref(), Some("alice"));

    // Strict expiry backdates `exp` by the registry's leeway; expiry can go unadvertised.
    tokens.set_expires_in(2);
    tokens.set_strict_expiry(true);
    tokens.set_advertise_expiry(false);
    let (_, body) = fetch_token(&c, &realm, "repository:x:pull", Some(("alice", "pw"))).await;
    assert!(body.get("expires_in").is_none(), "{body}");
    let cl = claims(body["token"].as_str().unwrap());
    assert_eq!(
        cl["iat"].as_u64().unwrap() + 2 - 60,
        cl["exp"].as_u64().unwrap()
    );

    // Without OAuth2, POSTs get 404 and GET still works.
    tokens.set_oauth(false);
    assert_eq!(post_form(&c, &realm, &form("rt-given")).await.0, 404);
    let (status, _) = fetch_token(&c, &realm, "repository:x:pull", Some(("alice", "pw"))).await;
    assert_eq!(status, 200);
    assert_eq!(tokens.requests().iter().rev().nth(1).unwrap().status, 404);
}
