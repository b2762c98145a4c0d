//! The object client against `cosfs serve` on a random loopback port, for every operation the
//! filesystem uses. Each scenario runs twice: against a server that verifies signatures and
//! against one started with `--anonymous` (the client still signs; the server must not care).

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{get_all, pattern, Env, Mode};
use cosfs::cos::*;
use cosfs::object::*;
use futures_util::{stream, StreamExt, TryStreamExt};

macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod signed {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::new(super::Mode::Signed).await).await
                }
            )*
        }
        mod anonymous {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::new(super::Mode::Anonymous).await).await
                }
            )*
        }
    };
}

both_modes!(
    round_trip_odd_keys_and_metadata,
    zero_byte_objects,
    listing_2500_keys_with_delimiter,
    ranged_reads_and_conditions,
    multipart_three_parts_short_last,
    multipart_rules_enforced,
    upload_part_copy_builds_object,
    copy_with_both_directives,
    deletes_single_and_multiple,
    retries_ride_out_injected_503s,
    head_bucket_and_missing_bucket,
    appendable_objects_follow_cos_rules,
    archived_objects_need_a_restore,
);

async fn round_trip_odd_keys_and_metadata(env: Env) {
    let c = &env.client;
    let keys = [
        "plain.txt",
        "with space/and+plus.bin",
        "unicode/子目录/腾讯云 文件.txt",
        "dots/../still/./a key",
        "query?and#hash&amp=1",
        "percent%20literal%",
        "trailing space ",
        "tilde~_-.",
    ];
    let mut opts = PutOptions {
        content_type: Some("text/plain".into()),
        storage_class: Some("standard_ia".into()),
        ..Default::default()
    };
    opts.user_meta.insert("mode".into(), "33188".into());
    opts.user_meta.insert("mtime".into(), "1700000000.5".into());
    for (i, key) in keys.iter().enumerate() {
        let body = Bytes::from(pattern(1000 + i * 37, i as u64));
        let put = c.put_object(key, body.clone(), &opts).await.unwrap();
        assert_eq!(put.etag, cosfs::cos::integrity::md5_hex(&body), "{key}");
        let head = c.head_object(key).await.unwrap();
        assert_eq!(head.size, body.len() as u64, "{key}");
        assert_eq!(head.etag, put.etag);
        assert_eq!(head.content_type.as_deref(), Some("text/plain"));
        assert_eq!(head.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(head.user_meta, opts.user_meta);
        assert_eq!(head.crc64, Some(cosfs::cos::integrity::crc64(&body)));
        assert!(head.last_modified.is_some());
        assert_eq!(get_all(c, key).await, body, "{key}");
    }
    // Every key comes back from a listing exactly as written.
    let page = c.list_objects(&ListRequest::default()).await.unwrap();
    let mut listed: Vec<_> = page.entries.iter().map(|e| e.key.clone()).collect();
    let mut want: Vec<_> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    listed.sort();
    assert_eq!(listed, want);
    // A missing key is a typed NotFound.
    let err = c.head_object("no/such/key").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = c
        .get_object("no/such/key", &GetOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.is_not_found(), "{err}");
    if let CosError::Service(e) = err {
        assert_eq!(e.code, "NoSuchKey");
        assert!(!e.request_id.is_empty());
    }
}

async fn zero_byte_objects(env: Env) {
    let c = &env.client;
    c.put_object("empty", Bytes::new(), &PutOptions::default())
        .await
        .unwrap();
    let dir_opts = PutOptions {
        content_type: Some("application/x-directory".into()),
        ..Default::default()
    };
    c.put_object("dir/", Bytes::new(), &dir_opts).await.unwrap();
    let h = c.head_object("empty").await.unwrap();
    assert_eq!(h.size, 0);
    assert_eq!(h.etag, "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(h.crc64, Some(0));
    assert!(get_all(c, "empty").await.is_empty());
    let h = c.head_object("dir/").await.unwrap();
    assert_eq!(h.content_type.as_deref(), Some("application/x-directory"));
    // A range on an empty object is unsatisfiable.
    let err = c
        .get_object(
            "empty",
            &GetOptions {
                range: Some(ByteRange::new(0, 1)),
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidRange), "{err}");
}

async fn listing_2500_keys_with_delimiter(env: Env) {
    let c = &env.client;
    // 2,000 files and 500 subdirectories (each with 2 objects) directly under big/,
    // plus keys around the prefix that must not appear.
    let mut keys: Vec<String> = (0..2000).map(|i| format!("big/f{i:05}")).collect();
    for i in 0..500 {
        keys.push(format!("big/d{i:03}/x"));
        keys.push(format!("big/d{i:03}/y/z"));
    }
    keys.push("bif".into());
    keys.push("big".into());
    keys.push("bih/a".into());
    let opts = PutOptions::default();
    stream::iter(keys.iter())
        .map(|k| c.put_object(k, Bytes::from_static(b"x"), &opts))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();

    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_objects(&ListRequest {
                prefix: "big/".into(),
                delimiter: Some("/".into()),
                marker: marker.clone(),
                max_keys: 1000,
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.entries.len() + page.common_prefixes.len() <= 1000);
        files.extend(page.entries.iter().map(|e| e.key.clone()));
        dirs.extend(page.common_prefixes.iter().cloned());
        if !page.is_truncated {
            break;
        }
        marker = page.next_marker.clone();
        assert!(marker.is_some());
    }
    assert_eq!(pages, 3);
    let want_files: Vec<_> = (0..2000).map(|i| format!("big/f{i:05}")).collect();
    let want_dirs: Vec<_> = (0..500).map(|i| format!("big/d{i:03}/")).collect();
    assert_eq!(files, want_files);
    assert_eq!(dirs, want_dirs);

    // Without a delimiter, everything under the prefix, in key order, sizes and ETags filled.
    let page = c
        .list_objects(&ListRequest {
            prefix: "big/d0".into(),
            max_keys: 7,
            ..Default::default()
        })
        .await
        .unwrap();
    let got: Vec<_> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        got,
        [
            "big/d000/x",
            "big/d000/y/z",
            "big/d001/x",
            "big/d001/y/z",
            "big/d002/x",
            "big/d002/y/z",
            "big/d003/x"
        ]
    );
    assert!(page.is_truncated);
    assert!(page
        .entries
        .iter()
        .all(|e| e.size == 1 && e.etag.len() == 32));
}

async fn ranged_reads_and_conditions(env: Env) {
    let c = &env.client;
    let data = pattern(3 * 1024 * 1024 + 17, 7);
    let put = c
        .put_object("blob", Bytes::from(data.clone()), &PutOptions::default())
        .await
        .unwrap();
    let n = data.len() as u64;
    for (a, b) in [
        (0, 1),
        (1, 8),
        (4095, 4097),
        (1_000_003, 1_500_007),
        (n - 5, n),
        (0, n),
    ] {
        let out = c
            .get_object(
                "blob",
                &GetOptions {
                    range: Some(ByteRange::new(a, b)),
                    if_match: Some(put.etag.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(out.meta.size, n, "total size from Content-Range");
        assert_eq!(out.content_length, b - a);
        let got = out.collect().await.unwrap();
        assert_eq!(&got[..], &data[a as usize..b as usize], "range {a}-{b}");
    }
    // Open-ended range and a range past the end (clamped).
    let got = c
        .get_object(
            "blob",
            &GetOptions {
                range: Some(ByteRange {
                    start: n - 3,
                    end: None,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(&got[..], &data[data.len() - 3..]);
    let err = c
        .get_object(
            "blob",
            &GetOptions {
                range: Some(ByteRange::new(n, n + 10)),
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidRange));
    // If-Match on a stale ETag: the reader never gets mixed versions.
    let err = c
        .get_object(
            "blob",
            &GetOptions {
                if_match: Some("0000".into()),
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), Some(ErrorKind::PreconditionFailed), "{err}");
    let err = c
        .get_object(
            "blob",
            &GetOptions {
                if_none_match: Some(put.etag.clone()),
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), Some(ErrorKind::NotModified), "{err}");
}

async fn multipart_three_parts_short_last(env: Env) {
    let c = &env.client;
    let mut opts = PutOptions::default();
    opts.user_meta.insert("uid".into(), "1000".into());
    let key = "mp/三 parts+.bin";
    let id = c.initiate_multipart(key, &opts).await.unwrap();
    let sizes = [1024 * 1024, 1024 * 1024 + 3, 100 * 1024 + 1];
    let bodies: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| pattern(*s, 100 + i as u64))
        .collect();
    // Upload out of order and concurrently, as the writer will.
    let up = Upload::new(key, &id);
    let mut parts: Vec<UploadedPart> = stream::iter([2usize, 0, 1])
        .map(|i| c.upload_part(&up, i as u32 + 1, Bytes::from(bodies[i].clone())))
        .buffer_unordered(3)
        .try_collect()
        .await
        .unwrap();
    parts.sort_by_key(|p| p.part_number);

    let listed = c.list_parts(&Upload::new(key, &id), None).await.unwrap();
    assert_eq!(listed.parts.len(), 3);
    assert_eq!(
        listed
            .parts
            .iter()
            .map(|p| p.size as usize)
            .collect::<Vec<_>>(),
        sizes
    );
    let uploads = c
        .list_multipart_uploads(&ListUploadsRequest::under("mp/"))
        .await
        .unwrap();
    assert_eq!(uploads.uploads.len(), 1);
    assert_eq!(uploads.uploads[0].key, key);
    assert_eq!(uploads.uploads[0].upload_id, id);

    let done = c
        .complete_multipart(&Upload::new(key, &id), &parts)
        .await
        .unwrap();
    assert!(done.etag.ends_with("-3"), "{}", done.etag);
    let whole: Vec<u8> = bodies.concat();
    assert_eq!(done.crc64, Some(cosfs::cos::integrity::crc64(&whole)));
    assert_eq!(get_all(c, key).await, whole);
    let head = c.head_object(key).await.unwrap();
    assert_eq!(head.etag, done.etag);
    assert_eq!(head.user_meta.get("uid").map(String::as_str), Some("1000"));
    // The upload is gone once completed.
    assert!(c
        .list_multipart_uploads(&ListUploadsRequest::under(""))
        .await
        .unwrap()
        .uploads
        .is_empty());
    let err = c
        .list_parts(&Upload::new(key, &id), None)
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

fn service_code(e: &CosError) -> &str {
    match e {
        CosError::Service(s) => &s.code,
        _ => "",
    }
}

async fn multipart_rules_enforced(env: Env) {
    let c = &env.client;
    let small = Bytes::from(pattern(1000, 1));
    let big = Bytes::from(pattern(1024 * 1024, 2));

    // A part below 1 MB that is not the last: EntityTooSmall.
    let id = c
        .initiate_multipart("r1", &PutOptions::default())
        .await
        .unwrap();
    let p1 = c
        .upload_part(&Upload::new("r1", &id), 1, small.clone())
        .await
        .unwrap();
    let p2 = c
        .upload_part(&Upload::new("r1", &id), 2, small.clone())
        .await
        .unwrap();
    let err = c
        .complete_multipart(&Upload::new("r1", &id), &[p1.clone(), p2.clone()])
        .await
        .unwrap_err();
    assert_eq!(service_code(&err), "EntityTooSmall", "{err}");

    // A gap in part numbers: InvalidPart. Unsorted: InvalidPartOrder. Wrong ETag: InvalidPart.
    let id = c
        .initiate_multipart("r2", &PutOptions::default())
        .await
        .unwrap();
    let a = c
        .upload_part(&Upload::new("r2", &id), 1, big.clone())
        .await
        .unwrap();
    let b = c
        .upload_part(&Upload::new("r2", &id), 3, small.clone())
        .await
        .unwrap();
    let err = c
        .complete_multipart(&Upload::new("r2", &id), &[a.clone(), b.clone()])
        .await
        .unwrap_err();
    assert_eq!(service_code(&err), "InvalidPart", "{err}");
    let b2 = c
        .upload_part(&Upload::new("r2", &id), 2, small.clone())
        .await
        .unwrap();
    let err = c
        .complete_multipart(&Upload::new("r2", &id), &[b2.clone(), a.clone()])
        .await
        .unwrap_err();
    assert_eq!(service_code(&err), "InvalidPartOrder", "{err}");
    let mut wrong = b2.clone();
    wrong.etag = "00000000000000000000000000000000".into();
    wrong.crc64 = None;
    let err = c
        .complete_multipart(&Upload::new("r2", &id), &[a.clone(), wrong])
        .await
        .unwrap_err();
    assert_eq!(service_code(&err), "InvalidPart", "{err}");
    // The good list still completes afterwards.
    c.complete_multipart(&Upload::new("r2", &id), &[a, b2])
        .await
        .unwrap();
    assert_eq!(c.head_object("r2").await.unwrap().size, 1024 * 1024 + 1000);

    // Unknown and aborted uploads: NoSuchUpload; abort leaves no object.
    let id = c
        .initiate_multipart("r3", &PutOptions::default())
        .await
        .unwrap();
    c.upload_part(&Upload::new("r3", &id), 1, small.clone())
        .await
        .unwrap();
    c.abort_multipart(&Upload::new("r3", &id)).await.unwrap();
    let err = c
        .upload_part(&Upload::new("r3", &id), 2, small.clone())
        .await
        .unwrap_err();
    assert_eq!(service_code(&err), "NoSuchUpload");
    assert!(c
        .abort_multipart(&Upload::new("r3", "nonexistent"))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(c.head_object("r3").await.unwrap_err().is_not_found());
}

async fn upload_part_copy_builds_object(env: Env) {
    let c = &env.client;
    let src = pattern(3 * 1024 * 1024, 9);
    let put = c
        .put_object("src", Bytes::from(src.clone()), &PutOptions::default())
        .await
        .unwrap();
    let id = c
        .initiate_multipart("dst", &PutOptions::default())
        .await
        .unwrap();
    let mib = 1024 * 1024;
    let p1 = c
        .upload_part_copy(
            &Upload::new("dst", &id),
            1,
            &CopySource {
                key: "src",
                range: Some(ByteRange::new(mib, 2 * mib + 5)),
                if_match: Some(&put.etag),
            },
        )
        .await
        .unwrap();
    let p2 = c
        .upload_part(
            &Upload::new("dst", &id),
            2,
            Bytes::from_static(b"appended tail"),
        )
        .await
        .unwrap();
    let err = c
        .upload_part_copy(
            &Upload::new("dst", &id),
            3,
            &CopySource {
                key: "src",
                range: None,
                if_match: Some("ffff"),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::PreconditionFailed), "{err}");
    let done = c
        .complete_multipart(&Upload::new("dst", &id), &[p1, p2])
        .await
        .unwrap();
    let mut want = src[mib as usize..(2 * mib + 5) as usize].to_vec();
    want.extend_from_slice(b"appended tail");
    assert_eq!(get_all(c, "dst").await, want);
    assert_eq!(done.crc64, Some(cosfs::cos::integrity::crc64(&want)));
}

async fn copy_with_both_directives(env: Env) {
    let c = &env.client;
    let mut opts = PutOptions {
        content_type: Some("text/plain".into()),
        storage_class: Some("STANDARD_IA".into()),
        ..Default::default()
    };
    opts.user_meta.insert("mode".into(), "33188".into());
    let body = Bytes::from_static(b"copy me");
    let put = c
        .put_object("a/src file", body.clone(), &opts)
        .await
        .unwrap();

    // Copy directive: headers travel with the object; storage class reverts to STANDARD.
    let r = c
        .copy_object("a/src file", "b/dst+copy", &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(r.etag, put.etag);
    let h = c.head_object("b/dst+copy").await.unwrap();
    assert_eq!(h.user_meta, opts.user_meta);
    assert_eq!(h.content_type.as_deref(), Some("text/plain"));
    assert_eq!(h.storage_class, None);
    assert_eq!(get_all(c, "b/dst+copy").await, body);

    // Replaced onto itself (chmod-style), guarded by the ETag.
    let mut new_meta = BTreeMap::new();
    new_meta.insert("mode".into(), "33261".into());
    new_meta.insert("uid".into(), "42".into());
    let replaced = CopyOptions {
        directive: MetadataDirective::Replaced(PutOptions {
            content_type: Some("application/x-sh".into()),
            storage_class: Some("STANDARD_IA".into()),
            user_meta: new_meta.clone(),
            ..Default::default()
        }),
        storage_class: None,
        if_match: Some(put.etag.clone()),
        if_none_match: None,
        source_size: None,
    };
    c.copy_object("a/src file", "a/src file", &replaced)
        .await
        .unwrap();
    let h = c.head_object("a/src file").await.unwrap();
    assert_eq!(h.user_meta, new_meta);
    assert_eq!(h.content_type.as_deref(), Some("application/x-sh"));
    assert_eq!(h.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(get_all(c, "a/src file").await, body);

    // A copy of the metadata is STANDARD unless the class is sent again (as COS does).
    c.copy_object("a/src file", "b/plain", &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(c.head_object("b/plain").await.unwrap().storage_class, None);
    let keep = CopyOptions {
        storage_class: Some("standard_ia".into()),
        ..Default::default()
    };
    c.copy_object("a/src file", "b/kept", &keep).await.unwrap();
    let h = c.head_object("b/kept").await.unwrap();
    assert_eq!(h.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(h.user_meta, new_meta, "metadata copied");

    // A stale ETag guard fails; Copy onto itself is refused as COS does.
    let mut stale = replaced.clone();
    stale.if_match = Some("0123".into());
    let err = c
        .copy_object("a/src file", "a/src file", &stale)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::PreconditionFailed), "{err}");
    let err = c
        .copy_object("a/src file", "a/src file", &CopyOptions::default())
        .await
        .unwrap_err();
    assert_eq!(service_code(&err), "InvalidRequest", "{err}");
    let err = c
        .copy_object("missing", "x", &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // User metadata over 2 KB is refused before sending.
    let mut huge = PutOptions::default();
    huge.user_meta.insert("xattr".into(), "x".repeat(3000));
    let err = c
        .put_object("big-meta", Bytes::new(), &huge)
        .await
        .unwrap_err();
    assert!(matches!(err, CosError::InvalidRequest(_)), "{err}");
}

async fn deletes_single_and_multiple(env: Env) {
    let c = &env.client;
    let keys: Vec<String> = (0..1000).map(|i| format!("del/{i:04} key+")).collect();
    let opts = PutOptions::default();
    stream::iter(keys.iter())
        .map(|k| c.put_object(k, Bytes::from_static(b"1"), &opts))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    c.delete_object("del/0000 key+").await.unwrap();
    assert!(c
        .head_object("del/0000 key+")
        .await
        .unwrap_err()
        .is_not_found());
    // Deleting a missing key succeeds, as on COS.
    c.delete_object("del/0000 key+").await.unwrap();
    let failures = c.delete_objects(&keys).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let page = c
        .list_objects(&ListRequest {
            prefix: "del/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.entries.is_empty());
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    assert!(matches!(
        c.delete_objects(&too_many).await,
        Err(CosError::InvalidRequest(_))
    ));
}

async fn retries_ride_out_injected_503s(env: Env) {
    let c = &env.client;
    let max = c.config().retry.max_attempts as u64;
    // Every call meets a burst of max-1 SlowDowns and still succeeds on its last attempt.
    for i in 0..10 {
        let key = format!("flaky/{i}");
        let body = Bytes::from(pattern(10_000, i));
        env.server.faults.update(|f| f.next_503 = max - 1);
        c.put_object(&key, body.clone(), &PutOptions::default())
            .await
            .unwrap();
        env.server.faults.update(|f| f.next_503 = max - 1);
        assert_eq!(get_all(c, &key).await, body);
    }
    assert_eq!(env.server.stats.get("InjectedFault"), 20 * (max - 1));
    // A server that always answers 503: the client gives up after max_attempts, typed.
    env.server.faults.update(|f| f.rate_503 = 1.0);
    let before = env.server.stats.get("InjectedFault");
    let err = c.head_object("flaky/0").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Throttled), "{err}");
    let attempts = env.server.stats.get("InjectedFault") - before;
    assert_eq!(attempts, c.config().retry.max_attempts as u64);
    // Non-retryable errors are not retried.
    env.server.faults.update(|f| f.rate_503 = 0.0);
    env.server.stats.reset();
    assert!(c.head_object("nope").await.unwrap_err().is_not_found());
    assert_eq!(env.server.stats.get("HeadObject"), 1);
}

async fn head_bucket_and_missing_bucket(env: Env) {
    env.client.head_bucket().await.unwrap();
    let other = common::client_with(
        {
            let mut cfg = common::client_config(&env.server.endpoint());
            cfg.bucket = "missing-1250000000".into();
            cfg
        },
        common::SECRET_KEY,
    );
    let err = other.head_bucket().await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = other
        .list_objects(&ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(service_code(&err), "NoSuchBucket");
}

/// Parts go without Content-MD5 once the server has shown that it answers with their CRC-64
/// (checked by the client before Complete); a part answered without one is sent again with
/// Content-MD5, and so are the parts after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_checked_by_crc64_or_else_by_content_md5() {
    let env = Env::new(Mode::Signed).await;
    let c = &env.client;
    let key = "mp/checked.bin";
    let id = c
        .initiate_multipart(key, &PutOptions::default())
        .await
        .unwrap();
    let bodies: Vec<Bytes> = (0..3)
        .map(|i| Bytes::from(pattern(1024 * 1024, 200 + i)))
        .collect();
    env.server.stats.reset();
    let mut parts = vec![c
        .upload_part(&Upload::new(key, &id), 1, bodies[0].clone())
        .await
        .unwrap()];
    assert_eq!(env.server.stats.get("UploadPart"), 1);
    // The server stops reporting part CRCs: the next part (sent without MD5, since part 1 came
    // back with a CRC) is unchecked, so it goes again with MD5, and so does the one after.
    let mut f = env.server.faults.get();
    f.omit_part_crc64 = true;
    env.server.faults.set(f);
    parts.push(
        c.upload_part(&Upload::new(key, &id), 2, bodies[1].clone())
            .await
            .unwrap(),
    );
    assert_eq!(env.server.stats.get("UploadPart"), 3, "part 2 sent twice");
    parts.push(
        c.upload_part(&Upload::new(key, &id), 3, bodies[2].clone())
            .await
            .unwrap(),
    );
    assert_eq!(
        env.server.stats.get("UploadPart"),
        4,
        "part 3 once, with MD5"
    );
    c.complete_multipart(&Upload::new(key, &id), &parts)
        .await
        .unwrap();
    let all: Vec<u8> = bodies.iter().flat_map(|b| b.to_vec()).collect();
    assert_eq!(get_all(c, key).await, all);
}

fn code_of<T: std::fmt::Debug>(r: CosResult<T>) -> (u16, String) {
    match r.expect_err("an error") {
        CosError::Service(e) => (e.status, e.code.clone()),
        other => panic!("not a service error: {other}"),
    }
}

async fn appendable_objects_follow_cos_rules(env: Env) {
    let c = &env.client;
    let opts = PutOptions {
        content_type: Some("text/plain".into()),
        user_meta: BTreeMap::from([("mode".to_string(), "33188".to_string())]),
        ..Default::default()
    };
    // The first APPEND creates an appendable object with the request's headers.
    let r = c
        .append_object(
            "log",
            Append {
                position: 0,
                body: Bytes::from_static(b"one\n"),
                opts: &opts,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.next_position, 4);
    assert_eq!(r.crc64, Some(integrity::crc64(b"one\n")));
    let r = c
        .append_object(
            "log",
            Append {
                position: 4,
                body: Bytes::from_static(b"two\n"),
                opts: &PutOptions::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.next_position, 8);
    assert_eq!(r.crc64, Some(integrity::crc64(b"one\ntwo\n")));
    let h = c.head_object("log").await.unwrap();
    assert!(h.appendable);
    assert_eq!((h.size, h.etag.as_str()), (8, r.etag.as_str()));
    assert_eq!(h.content_type.as_deref(), Some("text/plain"));
    assert_eq!(h.user_meta.get("mode").map(String::as_str), Some("33188"));
    assert_eq!(&get_all(c, "log").await[..], b"one\ntwo\n");

    // The position must be the length; a normal object refuses; a missing one starts at 0.
    let stale = c
        .append_object(
            "log",
            Append {
                position: 4,
                body: Bytes::from_static(b"x"),
                opts: &opts,
            },
        )
        .await;
    assert_eq!(code_of(stale), (409, "PositionNotEqualToLength".into()));
    c.put_object("plain", Bytes::from_static(b"p"), &opts)
        .await
        .unwrap();
    let normal = c
        .append_object(
            "plain",
            Append {
                position: 1,
                body: Bytes::from_static(b"x"),
                opts: &opts,
            },
        )
        .await;
    assert_eq!(code_of(normal), (409, "ObjectNotAppendable".into()));
    let missing = c
        .append_object(
            "new",
            Append {
                position: 3,
                body: Bytes::from_static(b"x"),
                opts: &opts,
            },
        )
        .await;
    assert_eq!(code_of(missing), (409, "PositionNotEqualToLength".into()));
    assert!(!c.head_object("plain").await.unwrap().appendable);
    assert_eq!(
        &get_all(c, "log").await[..],
        b"one\ntwo\n",
        "refusals change nothing"
    );

    // No copy from an appendable object, whole or in parts.
    let copy = c.copy_object("log", "log2", &CopyOptions::default()).await;
    assert_eq!(code_of(copy).0, 400);
    let id = c.initiate_multipart("log3", &opts).await.unwrap();
    let part = c
        .upload_part_copy(
            &Upload::new("log3", &id),
            1,
            &CopySource {
                key: "log",
                range: None,
                if_match: None,
            },
        )
        .await;
    assert_eq!(code_of(part).0, 400);
    c.abort_multipart(&Upload::new("log3", &id)).await.unwrap();

    // A PUT over it makes a normal object again.
    c.put_object("log", Bytes::from_static(b"reset"), &opts)
        .await
        .unwrap();
    let h = c.head_object("log").await.unwrap();
    assert!(!h.appendable && h.size == 5);
    let after_put = c
        .append_object(
            "log",
            Append {
                position: 5,
                body: Bytes::from_static(b"x"),
                opts: &opts,
            },
        )
        .await;
    assert_eq!(code_of(after_put), (409, "ObjectNotAppendable".into()));
}

async fn archived_objects_need_a_restore(env: Env) {
    let c = &env.client;
    env.server.faults.set(cosfs::server::FaultConfig {
        restore_delay_ms: 700,
        ..Default::default()
    });
    let archive = PutOptions {
        storage_class: Some("ARCHIVE".into()),
        ..Default::default()
    };
    c.put_object("cold", Bytes::from_static(b"frozen"), &archive)
        .await
        .unwrap();
    // Listed and HEAD as any object, but GET and copy are refused until restored.
    let h = c.head_object("cold").await.unwrap();
    assert_eq!(h.restore_status(), RestoreStatus::Archived);
    assert_eq!(h.size, 6);
    let get = c
        .get_object("cold", &GetOptions::default())
        .await
        .map(|_| ());
    assert_eq!(code_of(get), (403, "InvalidObjectState".into()));
    let copy = c
        .copy_object("cold", "cold2", &CopyOptions::default())
        .await;
    assert_eq!(code_of(copy), (403, "InvalidObjectState".into()));
    // Restoring a STANDARD object is refused; so is a malformed request.
    c.put_object("warm", Bytes::from_static(b"w"), &PutOptions::default())
        .await
        .unwrap();
    let warm = c.restore_object("warm", 1, "Standard").await;
    assert_eq!(code_of(warm), (403, "InvalidObjectState".into()));
    let bad_tier = c.restore_object("cold", 1, "Instant").await;
    assert_eq!(code_of(bad_tier), (400, "MalformedXML".into()));

    c.restore_object("cold", 2, "Expedited").await.unwrap();
    let h = c.head_object("cold").await.unwrap();
    assert_eq!(h.restore.as_deref(), Some("ongoing-request=\"true\""));
    assert_eq!(h.restore_status(), RestoreStatus::Ongoing);
    let again = c.restore_object("cold", 2, "Expedited").await;
    assert_eq!(code_of(again), (409, "RestoreAlreadyInProgress".into()));
    let get = c
        .get_object("cold", &GetOptions::default())
        .await
        .map(|_| ());
    assert_eq!(code_of(get).1, "InvalidObjectState");

    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let h = c.head_object("cold").await.unwrap();
    let RestoreStatus::Restored {
        expiry: Some(expiry),
    } = h.restore_status()
    else {
        panic!("restored by now: {:?}", h.restore);
    };
    let expiry = httpdate::parse_http_date(&expiry).unwrap();
    let days = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs_f64()
        / 86400.0;
    assert!((1.9..=2.0).contains(&days), "{days} days");
    assert_eq!(&get_all(c, "cold").await[..], b"frozen");
    assert_eq!(
        h.storage_class.as_deref(),
        Some("ARCHIVE"),
        "the class stays"
    );
    // A restored object may be copied; the copy is a new object in the class sent.
    c.copy_object("cold", "thawed", &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(&get_all(c, "thawed").await[..], b"frozen");
}
