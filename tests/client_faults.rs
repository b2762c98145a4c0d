//! The client's error handling against a misbehaving or strict server: wrong keys, clock skew,
//! hung and dropping servers, `<Error>` inside a 200, temporary credentials with refresh.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{client_config, client_with, get_all, pattern, Env, Mode, SECRET_ID, SECRET_KEY};
use cosfs::cos::config::TimeBudget;
use cosfs::cos::credentials::InstanceRoleProvider;
use cosfs::cos::*;
use cosfs::object::*;
use cosfs::server::FaultConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_a_clear_signature_error() {
    let env = Env::new(Mode::Signed).await;
    let bad = client_with(client_config(&env.server.endpoint()), "not-the-secret");
    let err = bad.list_objects(&ListRequest::default()).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::BadCredentials), "{err}");
    let text = err.to_string();
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(text.contains("request id"), "{text}");
    // Never retried: one request reached the server.
    assert_eq!(env.server.stats.get("ListObjects"), 1);

    // An unknown SecretId is a credentials error too.
    let stranger = CosClient::new(
        client_config(&env.server.endpoint()),
        Some(Arc::new(StaticProvider(Credentials::new(
            "AKIDunknown",
            SECRET_KEY,
        )))),
    )
    .unwrap();
    // HEAD errors have no body, so only the status is known.
    let err = stranger.head_object("x").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::AccessDenied), "{err}");
    let err = stranger
        .list_objects(&ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::BadCredentials), "{err}");

    // Unsigned requests are refused by a server that checks signatures.
    let unsigned = CosClient::new(client_config(&env.server.endpoint()), None).unwrap();
    let err = unsigned
        .list_objects(&ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::AccessDenied), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_is_corrected_from_the_server_date() {
    let env = Env::new(Mode::Signed).await;
    // The server's clock runs 2 h ahead: our 1 h signature looks expired to it.
    env.server.faults.update(|f| f.clock_offset_secs = 7200);
    env.client
        .put_object("skew", Bytes::from_static(b"ok"), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(env.client.head_object("skew").await.unwrap().size, 2);
    // The offset is remembered: later requests succeed at the first try.
    env.server.stats.reset();
    env.client.head_object("skew").await.unwrap();
    assert_eq!(env.server.stats.get("HeadObject"), 1);

    // Running 2 h behind: the signature starts in the server's future.
    let env = Env::new(Mode::Signed).await;
    env.server.faults.update(|f| f.clock_offset_secs = -7200);
    env.client.head_bucket().await.unwrap();
}

/// A fresh client's first requests go out together (a lookup is a HEAD and a LIST at once):
/// all succeed, including those signed before another one corrected the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_all_survive_clock_skew() {
    let env = Env::new(Mode::Signed).await;
    env.client
        .put_object("k", Bytes::from_static(b"v"), &PutOptions::default())
        .await
        .unwrap();
    env.server.faults.update(|f| f.clock_offset_secs = -1200);
    let fresh = client_with(client_config(&env.server.endpoint()), SECRET_KEY);
    let list = ListRequest::default();
    let heads = futures_util::future::join_all((0..8).map(|_| fresh.head_object("k")));
    let (heads, listed) = tokio::join!(heads, fresh.list_objects(&list));
    listed.unwrap();
    for h in heads {
        assert_eq!(h.unwrap().size, 1);
    }
    assert!(fresh.clock_offset_secs() <= -1190);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_server_times_out_instead_of_hanging() {
    let env = Env::new(Mode::Signed).await;
    env.client
        .put_object("k", Bytes::from_static(b"v"), &PutOptions::default())
        .await
        .unwrap();
    env.server.faults.update(|f| f.hang_rate = 1.0);
    let mut cfg = client_config(&env.server.endpoint());
    cfg.time = TimeBudget::from_op(Duration::from_millis(900));
    cfg.retry.max_attempts = 100;
    let c = client_with(cfg, SECRET_KEY);
    let t = Instant::now();
    let err = c.head_object("k").await.unwrap_err();
    assert!(matches!(err, CosError::Timeout(_)), "{err}");
    // Three attempts of 300 ms of silence each, all inside the 900 ms budget.
    assert!(
        t.elapsed() >= Duration::from_millis(850),
        "{:?}",
        t.elapsed()
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        env.server.stats.get("InjectedHang") >= 2,
        "hung attempts were retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_a_trickling_body_stay_inside_the_budget() {
    let env = Env::new(Mode::Signed).await;
    let data = pattern(256 * 1024, 4);
    env.client
        .put_object("k", Bytes::from(data), &PutOptions::default())
        .await
        .unwrap();
    let mut cfg = client_config(&env.server.endpoint());
    cfg.time = TimeBudget::from_op(Duration::from_secs(1));
    cfg.retry.max_attempts = 1000;
    cfg.retry.base_delay = Duration::from_millis(50);
    let c = client_with(cfg, SECRET_KEY);

    // Every answer a 503: many retries, then the 503 itself, once the second is spent.
    env.server.faults.set(FaultConfig {
        rate_503: 1.0,
        ..Default::default()
    });
    let t = Instant::now();
    let err = c.head_object("k").await.unwrap_err();
    assert_eq!(
        err.kind(),
        Some(cosfs::object::ErrorKind::Throttled),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1300),
        "{:?}",
        t.elapsed()
    );

    // A body trickling at 1 KiB/s: 64 KiB would take a minute; the ranged GET has 1 s plus
    // its 1/16 s transfer allowance.
    env.server.faults.set(FaultConfig {
        bandwidth: 1024,
        ..Default::default()
    });
    let t = Instant::now();
    let opts = GetOptions {
        range: Some(cosfs::object::ByteRange::new(0, 65536)),
        ..Default::default()
    };
    let r = match c.get_object("k", &opts).await {
        Ok(out) => out.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = r.unwrap_err();
    assert!(matches!(err, CosError::Timeout(_)), "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_mid_body_is_an_error_not_short_data() {
    let env = Env::new(Mode::Signed).await;
    let data = pattern(2 * 1024 * 1024, 3);
    env.client
        .put_object("big", Bytes::from(data.clone()), &PutOptions::default())
        .await
        .unwrap();
    env.server.faults.update(|f| {
        f.drop_rate = 1.0;
        f.methods = vec!["GET".into()];
    });
    let out = env
        .client
        .get_object("big", &GetOptions::default())
        .await
        .unwrap();
    let err = out.collect().await.unwrap_err();
    assert!(matches!(err, CosError::Transport(_)), "{err}");
    // Requests other than GET drop the connection before answering: retried, then typed.
    env.server.faults.update(|f| {
        f.drop_rate = 1.0;
        f.methods = vec!["PUT".into()];
    });
    let err = env
        .client
        .put_object("p", Bytes::from_static(b"x"), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CosError::Transport(_)), "{err}");
    // Once the faults stop, the same calls succeed.
    env.server.faults.update(|f| f.drop_rate = 0.0);
    let got = env
        .client
        .get_object("big", &GetOptions::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(got.len(), data.len());
}

/// A fake COS that answers every request 200 with whitespace and then an `<Error>` document,
/// as COS does when Complete Multipart Upload or Copy fails after it started answering.
async fn error_in_200_server() -> (String, Arc<AtomicUsize>) {
    common::fake_http(|_| {
        let body = "\n  \n  <Error><Code>InternalError</Code><Message>merge failed</Message><RequestId>rid-200</RequestId></Error>";
        ("200 OK", body.to_string())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_inside_a_200_is_an_error() {
    let (endpoint, hits) = error_in_200_server().await;
    let mut cfg = client_config(&endpoint);
    cfg.retry.max_attempts = 3;
    let c = client_with(cfg, SECRET_KEY);
    let part = UploadedPart {
        part_number: 1,
        etag: "abc".into(),
        crc64: None,
        size: None,
    };
    let err = c
        .complete_multipart(&Upload::new("k", "upload"), &[part])
        .await
        .unwrap_err();
    match &err {
        CosError::Service(e) => {
            assert_eq!(e.code, "InternalError");
            assert_eq!(e.request_id, "rid-200");
        }
        other => panic!("expected a service error, got {other}"),
    }
    // InternalError is transient: it was retried up to max_attempts.
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let err = c
        .copy_object("a", "b", &CopyOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::ServerError), "{err}");
}

/// A fake CVM metadata service handing out temporary keys for role `cosfs-role`; counts fetches.
async fn metadata_server(
    id: &'static str,
    key: &'static str,
    token: &'static str,
    lifetime: u64,
) -> (String, Arc<AtomicUsize>) {
    let (base, hits) = common::fake_http(move |head| {
        if !head.starts_with("GET /latest/meta-data/cam/security-credentials/cosfs-role ") {
            return ("404 Not Found", "not found".to_string());
        }
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + lifetime;
        let body = format!("{{\"TmpSecretId\":\"{id}\",\"TmpSecretKey\":\"{key}\",\"Token\":\"{token}\",\"ExpiredTime\":{expires},\"Expiration\":\"x\",\"Code\":\"Success\"}}");
        ("200 OK", body)
    })
    .await;
    (
        format!("{base}/latest/meta-data/cam/security-credentials"),
        hits,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_role_credentials_are_fetched_cached_and_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let mut tmp = Credentials::new("AKIDtmp", "tmpkey");
    tmp.token = Some("session-token".into());
    let server = cosfs::server::start(cosfs::server::ServerConfig {
        root: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        auth: cosfs::server::AuthMode::Keys(vec![tmp, Credentials::new(SECRET_ID, SECRET_KEY)]),
        buckets: vec![common::BUCKET.into()],
        faults: Default::default(),
        region: cosfs::server::DEFAULT_REGION.into(),
    })
    .await
    .unwrap();

    // Long-lived keys: fetched once, reused for every request.
    let (meta, hits) = metadata_server("AKIDtmp", "tmpkey", "session-token", 7200).await;
    let provider = Arc::new(InstanceRoleProvider::new(meta, "cosfs-role".into()));
    let c = CosClient::new(client_config(&server.endpoint()), Some(provider)).unwrap();
    for i in 0..5 {
        c.put_object(
            &format!("k{i}"),
            Bytes::from_static(b"x"),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Keys about to expire (lifetime 2 s, refreshed with a fifth left): fetched again.
    let (meta, hits) = metadata_server("AKIDtmp", "tmpkey", "session-token", 2).await;
    let provider = Arc::new(InstanceRoleProvider::new(meta, "cosfs-role".into()));
    let c = CosClient::new(client_config(&server.endpoint()), Some(provider)).unwrap();
    c.head_bucket().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    c.head_bucket().await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // A wrong token is ExpiredToken: the client refreshes once, then reports it.
    let (meta, hits) = metadata_server("AKIDtmp", "tmpkey", "stale-token", 7200).await;
    let provider = Arc::new(InstanceRoleProvider::new(meta, "cosfs-role".into()));
    let c = CosClient::new(client_config(&server.endpoint()), Some(provider)).unwrap();
    let err = c.list_objects(&ListRequest::default()).await.unwrap_err();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "refreshed once after ExpiredToken"
    );
    assert_eq!(err.kind(), Some(ErrorKind::ExpiredToken), "{err}");

    // A metadata service that does not know the role: a clear credentials error.
    let (meta, _) = metadata_server("a", "b", "c", 10).await;
    let provider = Arc::new(InstanceRoleProvider::new(meta, "other-role".into()));
    let c = CosClient::new(client_config(&server.endpoint()), Some(provider)).unwrap();
    let err = c.head_bucket().await.unwrap_err();
    assert!(matches!(err, CosError::Credentials(_)), "{err}");
    assert!(err.to_string().contains("instance role"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_multipart_upload_is_aborted_and_old_object_kept() {
    let env = Env::new(Mode::Signed).await;
    let c = &env.client;
    let old = Bytes::from(pattern(1000, 5));
    c.put_object("obj", old.clone(), &PutOptions::default())
        .await
        .unwrap();
    let new = Bytes::from(pattern(3 << 20, 6));
    // Parts keep failing: every PUT (part uploads) answers 503 until the client gives up.
    env.server.faults.update(|f| {
        f.rate_503 = 1.0;
        f.methods = vec!["PUT".into()];
    });
    let opts = PutOptions::default();
    let put = |body: Bytes| cosfs::cos::upload::put_multipart(c, "obj", body, &opts, 1 << 20, 2);
    let err = put(new.clone()).await.unwrap_err();
    // The server answers 503 without reading the 1 MiB part, so the last attempt may end as
    // the 503 or as the body's write cut off (EPIPE) when it closes the connection first.
    assert!(
        err.kind() == Some(ErrorKind::Throttled) || matches!(err, CosError::Transport(_)),
        "{err}"
    );
    assert_eq!(env.server.stats.get("AbortMultipartUpload"), 1);
    assert!(c
        .list_multipart_uploads(&ListUploadsRequest::under(""))
        .await
        .unwrap()
        .uploads
        .is_empty());
    let got = get_all(c, "obj").await;
    assert_eq!(got, old, "previous object intact");
    // With the server healthy again the same call replaces the object.
    env.server.faults.update(|f| f.rate_503 = 0.0);
    let done = put(new.clone()).await.unwrap();
    assert!(done.etag.ends_with("-3"), "{}", done.etag);
    let got = get_all(c, "obj").await;
    assert_eq!(got, new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_500s_are_injected_as_configured() {
    let env = Env::new(Mode::Signed).await;
    env.client.head_bucket().await.unwrap();
    env.server.faults.update(|f| f.latency_ms = 150);
    let t = Instant::now();
    env.client.head_bucket().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    env.server.faults.update(|f| {
        f.latency_ms = 0;
        f.rate_500 = 1.0;
    });
    let err = env
        .client
        .list_objects(&ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::ServerError), "{err}");
    assert_eq!(
        env.server.stats.get("InjectedFault"),
        env.client.config().retry.max_attempts as u64
    );
}
