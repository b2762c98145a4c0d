//! `cosfs check BUCKET[:/prefix]`: everything a mount needs, tested one step at a time, each
//! failure said in plain words with its fix. Steps stop at the first failure that makes the
//! next ones meaningless (no endpoint, no credentials, no bucket).
//!
//! 1. the bucket name (`name-APPID`) and where it is (`--region`/`--endpoint`);
//! 2. credentials found (and from where; the SecretId is shown masked, the key never);
//! 3. the endpoint answers (one HEAD, timed);
//! 4. the clock: the server's `Date` against ours (COS refuses signatures over 15 min off);
//! 5. credentials accepted and the bucket exists (a LIST, whose error body names the cause);
//! 6. permissions: HEAD bucket, LIST, then PUT / GET / DELETE of a probe object under the
//!    prefix (skipped with `--read-only`);
//! 7. unfinished multipart uploads under the prefix (left by crashed writers): counted, and
//!    those older than a day aborted with `--abort-stale-uploads`;
//! 8. directory renames a crash interrupted (`rename_journal`): reported, and finished or
//!    undone with `--repair`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use clap::Args;

use super::diagnose::{self, Target};
use crate::cos::CosClient;
use crate::object::{
    CosError, ErrorKind, GetOptions, ListRequest, ListUploadsRequest, ObjectStore, PutOptions,
    Upload,
};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Bucket (`name-APPID`), optionally with a key prefix: `BUCKET:/some/prefix`.
    pub bucket: String,
    #[command(flatten)]
    pub access: super::mount_args::AccessArgs,
    /// Skip the write probe (for mounts that will be --read-only).
    #[arg(long)]
    pub read_only: bool,
    /// Abort unfinished multipart uploads under the prefix that are older than a day.
    #[arg(long)]
    pub abort_stale_uploads: bool,
    /// Finish or undo the directory renames a crash interrupted (their journals under
    /// PREFIX.cosfs/renames/): one interrupted while copying is undone, one interrupted while
    /// deleting its sources is finished.
    #[arg(long)]
    pub repair: bool,
}

/// Collects the report; `fail` marks the run failed.
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&self, what: &str, detail: &str) {
        println!("ok    {what}: {detail}");
    }

    fn warn(&self, what: &str, detail: &str, fix: &str) {
        println!("warn  {what}: {detail}\n      fix: {fix}");
    }

    fn fail(&mut self, what: &str, detail: &str, fix: &str) {
        self.failed = true;
        println!("FAIL  {what}: {detail}\n      fix: {fix}");
    }
}

pub(super) fn mask(id: &str) -> String {
    if id.len() <= 8 {
        return "****".into();
    }
    format!("{}…{}", &id[..4], &id[id.len() - 4..])
}

/// "20 min fast", "3 s slow": our clock against the server's.
pub fn describe_skew(local_minus_server_secs: i64) -> String {
    let a = local_minus_server_secs.unsigned_abs();
    let amount = if a >= 120 {
        format!("{} min", (a + 30) / 60)
    } else {
        format!("{a} s")
    };
    let way = if local_minus_server_secs > 0 {
        "fast"
    } else {
        "slow"
    };
    format!("clock is {amount} {way}")
}

/// Is `name` shaped `something-DIGITS`?
fn ends_in_appid(name: &str) -> bool {
    name.rsplit_once('-').is_some_and(|(n, id)| {
        !n.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
    })
}

/// `cosfs check`: returns the exit code (0 when nothing failed).
pub fn run(args: CheckArgs) -> i32 {
    super::init_logging("error");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cosfs check: cannot start runtime: {e}");
            return 1;
        }
    };
    let mut report = Report { failed: false };
    rt.block_on(check(&args, &mut report));
    if report.failed {
        println!("\nSome checks failed; a mount would not work as expected.");
        1
    } else {
        println!("\nAll checks passed: this bucket can be mounted.");
        0
    }
}

async fn check(a: &CheckArgs, r: &mut Report) {
    let name = a
        .bucket
        .split_once(':')
        .map_or(a.bucket.as_str(), |(b, _)| b);
    if !ends_in_appid(name) {
        return r.fail(
            "bucket name",
            &format!("{name:?}: bucket name must end in -APPID"),
            "use the full name from the COS console's bucket list, e.g. examplebucket-1250000000",
        );
    }
    let target = match super::mount_args::target(&a.bucket, &a.access) {
        Ok(t) => t,
        Err(e) => {
            return r.fail(
                "configuration",
                &e,
                "see `cosfs check --help` for --region, --endpoint and credentials",
            )
        }
    };
    let base = target.client_cfg.endpoint.base_url();
    r.ok("bucket name", &format!("{name} at {base}"));
    let secret_id = match &target.creds {
        None => {
            r.ok("credentials", "none (anonymous requests)");
            None
        }
        Some(p) => match p.credentials().await {
            Ok(c) => {
                r.ok("credentials", &format!("SecretId {}", mask(&c.secret_id)));
                Some(c.secret_id.clone())
            }
            Err(e) => {
                return r.fail(
                    "credentials",
                    &e.to_string(),
                    "check the passwd file, COS_SECRET_ID/COS_SECRET_KEY or --cam-role",
                )
            }
        },
    };
    let mut cfg = target.client_cfg.clone();
    cfg.retry.max_attempts = 1;
    cfg.time = crate::cos::config::TimeBudget::from_op(Duration::from_secs(10));
    let client = match CosClient::new(cfg, target.creds.clone()) {
        Ok(c) => c,
        Err(e) => return r.fail("client", &e.to_string(), "report this as a bug"),
    };

    // Endpoint and clock.
    let (took, server_date, head) = client.probe().await;
    let id = secret_id.as_deref().map(mask);
    let why = Target {
        bucket: name,
        base_url: &base,
        prefix: &target.prefix,
        secret_id: id.as_deref(),
    };
    if let Err(e) = &head {
        if let Some(d) = diagnose::unreachable(e, &why) {
            return r.fail("endpoint", &d.detail, &d.fix);
        }
    }
    r.ok(
        "endpoint",
        &format!("{base} answered in {} ms", took.as_millis()),
    );
    match server_date {
        Some(d) => {
            let secs = |t: SystemTime| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs() as i64
            };
            let skew = secs(SystemTime::now()) - secs(d);
            let said = describe_skew(skew);
            if skew.abs() > 15 * 60 {
                r.fail(
                    "clock",
                    &format!(
                        "{said} against COS; COS refuses requests signed more than 15 min off"
                    ),
                    "sync the clock: timedatectl set-ntp true (or chronyc makestep)",
                );
            } else if skew.abs() > 60 {
                r.warn(
                    "clock",
                    &format!("{said} against COS"),
                    "sync the clock: timedatectl set-ntp true (or chronyc makestep)",
                );
            } else {
                r.ok("clock", &format!("within {} s of COS", skew.abs()));
            }
        }
        None => r.warn(
            "clock",
            "the endpoint sent no Date header, so the clock could not be compared",
            "make sure the machine's clock is synchronised (timedatectl)",
        ),
    }

    // Credentials and bucket: LIST, whose error body names the cause (HEAD errors have none).
    let list = ListRequest {
        prefix: target.prefix.clone(),
        delimiter: Some("/".into()),
        max_keys: 1,
        ..Default::default()
    };
    match client.list_objects(&list).await {
        Ok(_) => r.ok(
            "list",
            &format!("credentials accepted; bucket {name} listed"),
        ),
        Err(e) => {
            let d = diagnose::list_failure(&e, &why);
            return r.fail("list", &d.detail, &d.fix);
        }
    }
    match head {
        Ok(()) => r.ok("head bucket", "allowed"),
        Err(e) => r.warn(
            "head bucket",
            &format!("refused: {e}"),
            "grant cos:HeadBucket; mounting works without it",
        ),
    }
    if !a.read_only {
        probe_writes(&client, &target.prefix, name, r).await;
    }
    stale_uploads(&client, &target.prefix, a.abort_stale_uploads, r).await;
    interrupted_renames(&client, &target.prefix, a.repair, r).await;
}

/// Directory renames a crash interrupted (`rename_journal`), repaired with `--repair`.
async fn interrupted_renames(client: &CosClient, prefix: &str, act: bool, r: &mut Report) {
    use crate::fs::rename_journal::{repair, Repair};
    let found = repair(client, prefix, act && !r.failed).await;
    if found.is_empty() {
        return r.ok("renames", "no interrupted directory rename");
    }
    for f in found {
        match f {
            Repair::Undone { from, to, removed } => r.ok(
                "renames",
                &format!("undid the interrupted rename of {from} to {to}: removed {removed} copies; {from} is as it was"),
            ),
            Repair::Finished { from, to, deleted } => r.ok(
                "renames",
                &format!("finished the interrupted rename of {from} to {to}: deleted {deleted} sources left behind"),
            ),
            Repair::Running { from, to, age } => r.warn(
                "renames",
                &format!("the rename of {from} to {to} is running on a mount (its journal was rewritten {} s ago)", age.as_secs()),
                "wait for it; if its mount is gone, run this again once 5 minutes have passed",
            ),
            Repair::Interrupted { from, to, state } => r.fail(
                "renames",
                &format!("the rename of {from} to {to} was interrupted ({state}): both trees may be there"),
                &format!("run cosfs check --repair: it will {}", if state == "deleting" { "finish it" } else { "undo it" }),
            ),
            Repair::Failed { key, why } => r.fail(
                "renames",
                &format!("{key}: {why}"),
                "see the error; run cosfs check --repair again",
            ),
        }
    }
}

/// PUT, GET and DELETE of a small object under the prefix.
async fn probe_writes(client: &CosClient, prefix: &str, name: &str, r: &mut Report) {
    let key = format!("{prefix}.cosfs-check-{:016x}", rand::random::<u64>());
    let body = Bytes::from(format!("cosfs check probe {key}\n"));
    let denied = |op: &str, e: &CosError| {
        let fix = if e.kind() == Some(ErrorKind::AccessDenied) {
            format!("grant cos:{op} on {name}/{prefix}* in CAM, or mount with --read-only")
        } else {
            "see the error above".to_string()
        };
        (format!("{op} of {key} failed: {e}"), fix)
    };
    if let Err(e) = client
        .put_object(&key, body.clone(), &PutOptions::default())
        .await
    {
        let (d, f) = denied("PutObject", &e);
        return r.fail("write", &d, &f);
    }
    match client.get_object(&key, &GetOptions::default()).await {
        Ok(got) => match got.collect().await {
            Ok(b) if b == body => {}
            Ok(_) => r.fail(
                "read",
                &format!("{key} came back different from what was written"),
                "check for a proxy or gateway rewriting requests",
            ),
            Err(e) => {
                let (d, f) = denied("GetObject", &e);
                r.fail("read", &d, &f);
            }
        },
        Err(e) => {
            let (d, f) = denied("GetObject", &e);
            r.fail("read", &d, &f);
        }
    }
    match client.delete_object(&key).await {
        Ok(()) => r.ok("write", &format!("put, get and delete of {key} work")),
        Err(e) => {
            let (d, f) = denied("DeleteObject", &e);
            r.fail(
                "delete",
                &format!("{d} (the probe object is left behind)"),
                &f,
            );
        }
    }
}

/// Unfinished multipart uploads under the prefix.
async fn stale_uploads(client: &CosClient, prefix: &str, abort: bool, r: &mut Report) {
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    let mut stale = Vec::new();
    let mut total = 0usize;
    let mut req = ListUploadsRequest::under(prefix);
    loop {
        let page = match client.list_multipart_uploads(&req).await {
            Ok(p) => p,
            Err(e) => {
                return r.warn(
                    "unfinished uploads",
                    &format!("cannot list them: {e}"),
                    "grant cos:ListMultipartUploads to see uploads left by crashed writers",
                )
            }
        };
        total += page.uploads.len();
        stale.extend(
            page.uploads
                .into_iter()
                .filter(|u| u.initiated.is_some_and(|t| t < day_ago)),
        );
        match (page.next_key_marker, page.next_upload_id_marker) {
            (Some(k), i) if page.is_truncated => {
                req.key_marker = Some(k);
                req.upload_id_marker = i;
            }
            _ => break,
        }
    }
    if stale.is_empty() {
        return r.ok(
            "unfinished uploads",
            &format!(
                "{total} in progress, none older than a day (a mount aborts the uploads a \
                 killed mount with the same --cache-dir left, at its next start)"
            ),
        );
    }
    if !abort {
        return r.warn(
            "unfinished uploads",
            &format!(
                "{} unfinished multipart uploads older than a day (left by writers that crashed); \
                 their parts are billed as storage",
                stale.len()
            ),
            "run cosfs check --abort-stale-uploads, or set a lifecycle rule for incomplete uploads",
        );
    }
    let mut aborted = 0;
    for u in &stale {
        if client
            .abort_multipart(&Upload::new(&u.key, &u.upload_id))
            .await
            .is_ok()
        {
            aborted += 1;
        }
    }
    r.ok(
        "unfinished uploads",
        &format!("aborted {aborted} of {} older than a day", stale.len()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words() {
        assert_eq!(describe_skew(1200), "clock is 20 min fast");
        assert_eq!(describe_skew(-5), "clock is 5 s slow");
        assert_eq!(describe_skew(-3600), "clock is 60 min slow");
        assert!(ends_in_appid("examplebucket-1250000000"));
        assert!(!ends_in_appid("examplebucket"));
        assert!(!ends_in_appid("-125"));
        assert!(!ends_in_appid("bucket-12a"));
        assert_eq!(mask("AKIDtestsecretid0000000000000000"), "AKID…0000");
    }
}
