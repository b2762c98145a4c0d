//! The in-process `LocalStore` and `cosfs serve` behind the HTTP client answer alike: one
//! script of object and multipart operations (hits, misses and refusals) runs against both and
//! must give the same answers line by line (ETags, CRC-64s, bytes, listing pages, error
//! statuses and codes). Then: a store written in-process is served by `cosfs serve --root`,
//! a directory is refused to a second process, and `FaultyStore` injects and counts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{client_config, client_with, pattern, start_server, Mode, BUCKET, SECRET_KEY};
use cosfs::local::LocalStore;
use cosfs::object::faulty::{Faults, FaultyStore};
use cosfs::object::{
    Append, ByteRange, CopyOptions, CopySource, CosResult, GetOptions, ListRequest,
    ListUploadsRequest, MetadataDirective, ObjectStore, PutOptions, Upload, UploadedPart,
};

fn line<T>(what: &str, r: CosResult<T>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => format!("{what}: {}", show(v)),
        Err(e) => match e {
            cosfs::object::CosError::Service(s) => format!("{what}: ERR {} {}", s.status, s.code),
            other => format!("{what}: ERR {other}"),
        },
    }
}

/// A part's outcome, kept for later use.
fn clone_ok(r: &CosResult<UploadedPart>) -> CosResult<UploadedPart> {
    match r {
        Ok(p) => Ok(p.clone()),
        Err(e) => Err(cosfs::object::CosError::InvalidResponse(e.to_string())),
    }
}

fn meta(user: &[(&str, &str)], class: Option<&str>) -> PutOptions {
    PutOptions {
        content_type: Some("text/plain".into()),
        storage_class: class.map(str::to_string),
        user_meta: user
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

async fn get(s: &dyn ObjectStore, key: &str, opts: GetOptions) -> CosResult<Bytes> {
    let out = s.get_object(key, &opts).await?;
    out.collect().await
}

/// The script; every answer as one line.
async fn script(s: &dyn ObjectStore) -> Vec<String> {
    let mut out = Vec::new();
    let put = |k: &'static str, body: &'static [u8]| async move {
        s.put_object(k, Bytes::from_static(body), &PutOptions::default())
            .await
    };
    out.push(line(
        "put a",
        s.put_object(
            "a.txt",
            "hello world".into(),
            &meta(&[("mode", "33261")], None),
        )
        .await,
        |r| format!("{} {:?}", r.etag, r.crc64),
    ));
    out.push(line("head a", s.head_object("a.txt").await, |m| {
        format!(
            "{} {} {:?} {:?} {:?} {:?}",
            m.size, m.etag, m.content_type, m.storage_class, m.crc64, m.user_meta
        )
    }));
    let range = |a, b| GetOptions {
        range: Some(ByteRange::new(a, b)),
        ..Default::default()
    };
    out.push(line("get 1..4", get(s, "a.txt", range(1, 4)).await, |b| {
        format!("{b:?}")
    }));
    out.push(line(
        "get past end",
        get(s, "a.txt", range(20, 30)).await,
        |b| format!("{b:?}"),
    ));
    let etag = s.head_object("a.txt").await.unwrap().etag;
    let cond = |m: Option<&str>, n: Option<&str>| GetOptions {
        if_match: m.map(str::to_string),
        if_none_match: n.map(str::to_string),
        ..Default::default()
    };
    out.push(line(
        "get if-match other",
        get(s, "a.txt", cond(Some("0000"), None)).await,
        |b| format!("{b:?}"),
    ));
    out.push(line(
        "get if-match same",
        get(s, "a.txt", cond(Some(&etag), None)).await,
        |b| format!("{b:?}"),
    ));
    out.push(line(
        "get if-none-match same",
        get(s, "a.txt", cond(None, Some(&etag))).await,
        |b| format!("{b:?}"),
    ));
    out.push(line(
        "get missing",
        get(s, "nope", GetOptions::default()).await,
        |b| format!("{b:?}"),
    ));
    for k in ["dir/b", "dir/c/d", "dir/c/e", "dir/f", "dir0"] {
        out.push(line(&format!("put {k}"), put(k, b"x").await, |r| r.etag));
    }
    let mut marker = None;
    loop {
        let page = s
            .list_objects(&ListRequest {
                prefix: "dir/".into(),
                delimiter: Some("/".into()),
                marker: marker.clone(),
                max_keys: 2,
            })
            .await;
        let next = page.as_ref().ok().and_then(|p| p.next_marker.clone());
        let more = page.as_ref().is_ok_and(|p| p.is_truncated);
        out.push(line("list dir/ by 2", page, |p| {
            let keys: Vec<_> = p
                .entries
                .iter()
                .map(|e| (&e.key, e.size, &e.etag))
                .collect();
            format!(
                "{keys:?} {:?} {} {:?}",
                p.common_prefixes, p.is_truncated, p.next_marker
            )
        }));
        if !more {
            break;
        }
        marker = next;
    }
    let copy = |d: MetadataDirective| CopyOptions {
        directive: d,
        ..Default::default()
    };
    out.push(line(
        "copy a to a2",
        s.copy_object("a.txt", "a2.txt", &copy(MetadataDirective::Copy))
            .await,
        |r| format!("{} {:?}", r.etag, r.crc64),
    ));
    out.push(line(
        "copy a onto itself (Copy)",
        s.copy_object("a.txt", "a.txt", &copy(MetadataDirective::Copy))
            .await,
        |r| r.etag,
    ));
    out.push(line(
        "copy a onto itself (Replaced, IA)",
        s.copy_object(
            "a.txt",
            "a.txt",
            &copy(MetadataDirective::Replaced(meta(
                &[("mode", "33188")],
                Some("STANDARD_IA"),
            ))),
        )
        .await,
        |r| r.etag,
    ));
    out.push(line("head a", s.head_object("a.txt").await, |m| {
        format!("{:?} {:?}", m.storage_class, m.user_meta)
    }));
    out.push(line(
        "copy with a failed source condition",
        s.copy_object(
            "a.txt",
            "a3.txt",
            &CopyOptions {
                if_match: Some("0000".into()),
                ..Default::default()
            },
        )
        .await,
        |r| r.etag,
    ));
    let long = "k".repeat(851);
    out.push(line(
        "put an 851-byte key",
        s.put_object(&long, "x".into(), &PutOptions::default())
            .await,
        |r| r.etag,
    ));
    let huge = "v".repeat(2100);
    out.push(line(
        "put 2 KB of metadata",
        s.put_object("m", "x".into(), &meta(&[("big", &huge)], None))
            .await,
        |r| r.etag,
    ));
    out.push(line(
        "put a bad storage class",
        s.put_object("m", "x".into(), &meta(&[], Some("GLACIER")))
            .await,
        |r| r.etag,
    ));

    // Multipart.
    let id = s
        .initiate_multipart("big", &meta(&[("mode", "33188")], None))
        .await
        .unwrap();
    let mib = Bytes::from(pattern(1 << 20, 7));
    let p1 = s
        .upload_part(&Upload::new("big", &id), 1, mib.clone())
        .await;
    out.push(line("part 1", clone_ok(&p1), |p| {
        format!("{} {:?}", p.etag, p.crc64)
    }));
    let p2 = s
        .upload_part(&Upload::new("big", &id), 2, Bytes::from_static(b"small"))
        .await;
    out.push(line("part 2 (small)", clone_ok(&p2), |p| p.etag));
    let p3 = s
        .upload_part_copy(
            &Upload::new("big", &id),
            3,
            &CopySource {
                key: "a2.txt",
                range: Some(ByteRange::new(0, 5)),
                if_match: None,
            },
        )
        .await;
    out.push(line("part 3 (copy of 5 bytes)", clone_ok(&p3), |p| {
        format!("{} {:?}", p.etag, p.crc64)
    }));
    out.push(line(
        "part copy past the source",
        s.upload_part_copy(
            &Upload::new("big", &id),
            4,
            &CopySource {
                key: "a2.txt",
                range: Some(ByteRange::new(0, 50)),
                if_match: None,
            },
        )
        .await,
        |p| p.etag,
    ));
    out.push(line(
        "part 0",
        s.upload_part(&Upload::new("big", &id), 0, Bytes::from_static(b"x"))
            .await,
        |p| p.etag,
    ));
    let (p1, p2, p3) = (p1.unwrap(), p2.unwrap(), p3.unwrap());
    let part = |p: &UploadedPart| UploadedPart {
        crc64: None,
        size: None,
        ..p.clone()
    };
    out.push(line(
        "complete with a small middle part",
        s.complete_multipart(&Upload::new("big", &id), &[part(&p1), part(&p2), part(&p3)])
            .await,
        |r| r.etag,
    ));
    out.push(line(
        "complete with a gap",
        s.complete_multipart(&Upload::new("big", &id), &[part(&p1), part(&p3)])
            .await,
        |r| r.etag,
    ));
    out.push(line(
        "complete out of order",
        s.complete_multipart(&Upload::new("big", &id), &[part(&p3), part(&p1)])
            .await,
        |r| r.etag,
    ));
    let p2 = s
        .upload_part(&Upload::new("big", &id), 2, mib.clone())
        .await
        .unwrap();
    out.push(line(
        "list parts",
        s.list_parts(&Upload::new("big", &id), None).await,
        |l| {
            let parts: Vec<_> = l
                .parts
                .iter()
                .map(|p| (p.part_number, &p.etag, p.size))
                .collect();
            format!("{parts:?} {}", l.is_truncated)
        },
    ));
    out.push(line(
        "list uploads",
        s.list_multipart_uploads(&ListUploadsRequest::under(""))
            .await,
        |l| {
            let keys: Vec<_> = l.uploads.iter().map(|u| &u.key).collect();
            format!("{keys:?} {}", l.is_truncated)
        },
    ));
    out.push(line(
        "complete",
        s.complete_multipart(&Upload::new("big", &id), &[part(&p1), part(&p2), part(&p3)])
            .await,
        |r| format!("{} {:?}", r.etag, r.crc64),
    ));
    out.push(line("head big", s.head_object("big").await, |m| {
        format!("{} {} {:?} {:?}", m.size, m.etag, m.crc64, m.user_meta)
    }));
    out.push(line(
        "get big",
        get(s, "big", GetOptions::default()).await,
        |b| {
            format!(
                "{} bytes, md5 {}",
                b.len(),
                hex::encode(<md5::Md5 as md5::Digest>::digest(&b))
            )
        },
    ));
    out.push(line(
        "abort after complete",
        s.abort_multipart(&Upload::new("big", &id)).await,
        |_| "ok".into(),
    ));
    out.push(line(
        "delete multiple",
        s.delete_objects(&["a2.txt".into(), "never".into()]).await,
        |f| format!("{f:?}"),
    ));
    out.push(line("delete a", s.delete_object("a.txt").await, |_| {
        "ok".into()
    }));
    out.push(line(
        "delete a again",
        s.delete_object("a.txt").await,
        |_| "ok".into(),
    ));
    out.push(line("head a", s.head_object("a.txt").await, |m| m.etag));
    let p = PutOptions::default();
    for (what, key, at, body) in [
        ("append create", "log", 0, "one"),
        ("append more", "log", 3, "two"),
        ("append stale", "log", 3, "x"),
        ("append to normal", "big", 0, "x"),
    ] {
        out.push(line(
            what,
            s.append_object(
                key,
                Append {
                    position: at,
                    body: Bytes::from_static(body.as_bytes()),
                    opts: &p,
                },
            )
            .await,
            |r| format!("{r:?}"),
        ));
    }
    out.push(line("head log", s.head_object("log").await, |m| {
        format!("{} {} {}", m.size, m.appendable, m.etag)
    }));
    out.push(line(
        "copy appendable",
        s.copy_object("log", "log2", &CopyOptions::default()).await,
        |r| r.etag,
    ));
    let cold = meta(&[], Some("DEEP_ARCHIVE"));
    out.push(line(
        "put archived",
        s.put_object("cold", Bytes::from_static(b"c"), &cold).await,
        |r| r.etag,
    ));
    out.push(line(
        "get archived",
        get(s, "cold", GetOptions::default()).await,
        |b| format!("{b:?}"),
    ));
    out.push(line(
        "restore standard",
        s.restore_object("log", 1, "Bulk").await,
        |_| "ok".into(),
    ));
    out.push(line(
        "restore archived",
        s.restore_object("cold", 1, "Bulk").await,
        |_| "ok".into(),
    ));
    out.push(line(
        "get restored",
        get(s, "cold", GetOptions::default()).await,
        |b| format!("{b:?}"),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_and_served_store_answer_alike() {
    let served_dir = tempfile::tempdir().unwrap();
    let server = start_server(served_dir.path(), Mode::Signed).await;
    let client = client_with(client_config(&server.endpoint()), SECRET_KEY);
    let over_http = script(&client).await;

    let local_dir = tempfile::tempdir().unwrap();
    let local = LocalStore::open(local_dir.path(), BUCKET).unwrap();
    let in_process = script(&local).await;
    for (h, l) in over_http.iter().zip(&in_process) {
        assert_eq!(h, l, "cosfs serve vs LocalStore");
    }
    assert_eq!(over_http.len(), in_process.len());
    // The script exercises refusals, not only successes.
    let errors = in_process.iter().filter(|l| l.contains(": ERR ")).count();
    assert!(errors >= 12, "{in_process:#?}");

    // What LocalStore wrote, `cosfs serve --root` serves (after the store lets go of it).
    local
        .put_object(
            "handed-over",
            "from the local store".into(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let second = LocalStore::open(local_dir.path(), BUCKET);
    assert!(
        second.is_err_and(|e| e.to_string().contains("in use by another cosfs process")),
        "a store directory is one process's at a time"
    );
    drop(local);
    let server = start_server(local_dir.path(), Mode::Signed).await;
    let client = client_with(client_config(&server.endpoint()), SECRET_KEY);
    let got = get(&client, "handed-over", GetOptions::default())
        .await
        .unwrap();
    assert_eq!(&got[..], b"from the local store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_store_injects_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::open(dir.path(), BUCKET).unwrap());
    let s = FaultyStore::new(local, 42);
    s.put_object(
        "k",
        Bytes::from(pattern(1 << 16, 1)),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    s.set_faults(Faults {
        rate_503: 1.0,
        only: vec!["PutObject"],
        ..Default::default()
    });
    let e = s
        .put_object("k", "new".into(), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(
        get(&s, "k", GetOptions::default()).await.unwrap().len(),
        1 << 16,
        "a refused PUT changes nothing"
    );
    s.set_faults(Faults {
        drop_rate: 1.0,
        ..Default::default()
    });
    let Err(e) = get(&s, "k", GetOptions::default()).await else {
        panic!("a cut body is an error");
    };
    assert!(e.to_string().contains("body cut off"), "{e}");
    s.set_faults(Faults {
        timeout_rate: 1.0,
        timeout_after: Duration::from_millis(30),
        only: vec!["HeadObject"],
        ..Default::default()
    });
    let e = s.head_object("k").await.unwrap_err();
    assert!(matches!(e, cosfs::object::CosError::Timeout(_)), "{e}");
    assert_eq!(s.count("PutObject"), 2);
    assert_eq!(s.count("GetObject"), 2);
    assert_eq!(s.count("HeadObject"), 1);
}
