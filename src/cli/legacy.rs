//! Command lines that are not `cosfs SUBCOMMAND ...`, rewritten into `cosfs mount ...` before
//! clap sees them, so every value is still checked by one parser:
//!
//! - Tencent cosfs / s3fs form: `cosfs BUCKET[:/prefix] MOUNTPOINT -o url=...,passwd_file=...`
//!   (also what `mount.fuse3` runs for an fstab line `cosfs#BUCKET MOUNTPOINT fuse ...`);
//! - the mount helper: `mount -t fuse.cosfs` runs `/sbin/mount.fuse.cosfs SOURCE MOUNTPOINT
//!   [-n] [-v] [-o OPTIONS]`, where OPTIONS still hold fstab-only words like `_netdev`;
//! - `cosfs mount --config FILE`: a `key = value` file (systemd's `/etc/cosfs/NAME.conf`).
//!
//! Each `-o` word is mapped (to a `cosfs mount` flag), ignored silently (words meant for
//! mount(8), systemd or the kernel that cosfs sets itself), ignored with a warning (legacy
//! tuning knobs cosfs does not need), or rejected by name. The table is in the README.

use std::ffi::OsString;
use std::path::Path;

/// The argv for clap, and warnings to print before running it.
#[derive(Debug, PartialEq, Eq)]
pub struct Routed {
    pub argv: Vec<OsString>,
    pub warnings: Vec<String>,
}

const SUBCOMMANDS: &[&str] = &["mount", "unmount", "serve", "check", "stats", "help"];

/// Rewrite `argv` (program name first) if it is a legacy, mount-helper or `--config` form.
pub fn route(argv: Vec<OsString>) -> Result<Routed, String> {
    let prog = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let first = argv.get(1).map(|a| a.to_string_lossy().into_owned());
    let legacy = prog.starts_with("mount.")
        || matches!(&first, Some(f) if !f.starts_with('-') && !SUBCOMMANDS.contains(&f.as_str()));
    if legacy {
        let words: Vec<String> = argv[1..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return translate_legacy(&words);
    }
    if first.as_deref() == Some("mount") {
        return expand_config(argv);
    }
    Ok(Routed {
        argv,
        warnings: Vec::new(),
    })
}

/// `SOURCE MOUNTPOINT [-o OPTS]... [-f] [-d] [-s] [-n] [-v]` into `cosfs mount ...`.
pub fn translate_legacy(words: &[String]) -> Result<Routed, String> {
    let mut positional = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        match w.as_str() {
            "-o" => {
                let opts = words.get(i).ok_or("-o needs a list of options")?;
                i += 1;
                map_options(opts, &mut flags, &mut warnings)?;
            }
            o if o.starts_with("-o") => map_options(&o[2..], &mut flags, &mut warnings)?,
            "-f" => flags.push("--foreground".into()),
            "-d" => flags.extend(["--foreground", "--log-level", "debug"].map(String::from)),
            // single-threaded (libfuse), fake / verbose / no-mtab (mount(8)): nothing to do
            "-s" | "-n" | "-v" | "-fake" => {}
            "-h" | "--help" => {
                return Ok(Routed {
                    argv: ["cosfs", "mount", "--help"].map(OsString::from).to_vec(),
                    warnings,
                })
            }
            o if o.starts_with('-') => {
                return Err(format!(
                    "unknown flag {o:?} (legacy form: cosfs BUCKET MOUNTPOINT -o OPTIONS)"
                ))
            }
            _ => positional.push(w.clone()),
        }
    }
    let [source, mountpoint] = <[String; 2]>::try_from(positional).map_err(|p| {
        format!(
            "expected BUCKET[:/prefix] and MOUNTPOINT, got {} argument(s): {}",
            p.len(),
            p.join(" ")
        )
    })?;
    let source = source.strip_prefix("cosfs#").unwrap_or(&source).to_string();
    let mut argv: Vec<OsString> = vec!["cosfs".into(), "mount".into(), source.into()];
    argv.push(mountpoint.into());
    argv.extend(flags.into_iter().map(OsString::from));
    Ok(Routed { argv, warnings })
}

/// What one `-o` word means for cosfs.
#[derive(Debug, PartialEq, Eq)]
enum Meaning {
    /// These `cosfs mount` flags.
    Flags(Vec<String>),
    /// For mount(8), systemd, or already how cosfs mounts: nothing to do, nothing to say.
    Ignore,
    /// A legacy knob cosfs has no use for; the reason is shown to the operator.
    Obsolete(&'static str),
}

fn map_options(
    list: &str,
    flags: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    for word in list.split(',').filter(|w| !w.is_empty()) {
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (word, None),
        };
        match meaning(name, value)? {
            Meaning::Flags(f) => flags.extend(f),
            Meaning::Ignore => {}
            Meaning::Obsolete(why) => warnings.push(format!("ignoring -o {name}: {why}")),
        }
    }
    Ok(())
}

fn meaning(name: &str, value: Option<&str>) -> Result<Meaning, String> {
    let need = || {
        value
            .filter(|v| !v.is_empty())
            .ok_or(format!("-o {name} needs a value: {name}=..."))
    };
    let flag = |f: &str, v: &str| Meaning::Flags(vec![f.to_string(), v.to_string()]);
    Ok(match name {
        "url" => flag("--endpoint", need()?),
        "passwd_file" => flag("--passwd-file", need()?),
        "cam_role" => flag("--cam-role", need()?),
        "allow_other" => Meaning::Flags(vec!["--allow-other".into()]),
        "uid" => flag("--uid", need()?),
        "gid" => flag("--gid", need()?),
        "umask" => {
            let v = need()?;
            let mask = u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or(format!("-o umask={v} is not an octal mask such as 022"))?;
            Meaning::Flags(vec![
                "--file-mode".into(),
                format!("{:04o}", 0o666 & !mask),
                "--dir-mode".into(),
                format!("{:04o}", 0o777 & !mask),
            ])
        }
        "dbglevel" => {
            let v = need()?;
            let level = match v.to_ascii_lowercase().as_str() {
                "crit" | "critical" | "err" | "error" => "error",
                "warn" | "warning" => "warn",
                "info" => "info",
                "dbg" | "debug" => "debug",
                _ => return Err(format!("-o dbglevel={v}: use crit, err, warn, info or dbg")),
            };
            flag("--log-level", level)
        }
        "curldbg" => flag("--log-level", "trace"),
        "logfile" => flag("--log-file", need()?),
        // s3fs and Tencent cosfs keep file contents there across mounts: the disk cache (and
        // the staging files, which never outlive the mount).
        "use_cache" => {
            let d = need()?;
            Meaning::Flags(vec![
                "--cache-dir".into(),
                d.to_string(),
                "--disk-cache".into(),
                d.to_string(),
            ])
        }
        "parallel_count" => flag("--upload-concurrency", need()?),
        "multipart_size" => {
            let v = need()?;
            let mb: u64 = v
                .parse()
                .map_err(|_| format!("-o multipart_size={v} is not a number of MB"))?;
            flag("--part-size", &format!("{mb}M"))
        }
        "stat_cache_expire" => flag("--metadata-ttl", need()?),
        "storage_class" => flag("--storage-class", need()?),
        "readwrite_timeout" => flag("--op-timeout", need()?),
        "public_bucket" => match value {
            Some("1") | None => Meaning::Flags(vec!["--anonymous".into()]),
            Some("0") => Meaning::Ignore,
            Some(v) => return Err(format!("-o public_bucket={v}: use 0 or 1")),
        },
        "ro" => Meaning::Flags(vec!["--read-only".into()]),
        "noexec" => Meaning::Flags(vec!["--noexec".into()]),
        "nonempty" => Meaning::Flags(vec!["--nonempty".into()]),
        // mount(8) and systemd words, and kernel flags cosfs sets itself (always nodev,nosuid)
        "_netdev"
        | "nofail"
        | "auto"
        | "noauto"
        | "user"
        | "users"
        | "nouser"
        | "owner"
        | "group"
        | "defaults"
        | "rw"
        | "exec"
        | "dev"
        | "nodev"
        | "suid"
        | "nosuid"
        | "atime"
        | "noatime"
        | "relatime"
        | "strictatime"
        | "nodiratime"
        | "async"
        | "default_permissions"
        | "comment" => Meaning::Ignore,
        n if n.starts_with("x-") => Meaning::Ignore,
        "del_cache" | "check_cache_dir_exist" => {
            Meaning::Obsolete("staging files are unlinked when made; nothing is left to delete")
        }
        "ensure_diskfree" => Meaning::Obsolete("use --cache-dir-size to cap the cache directory"),
        "retries" | "connect_timeout" | "multireq_max" => {
            Meaning::Obsolete("cosfs retries with backoff by itself")
        }
        "max_stat_cache_size"
        | "enable_noobj_cache"
        | "complement_stat"
        | "notsup_compat_dir"
        | "mp_umask" => {
            Meaning::Obsolete("cosfs keeps metadata in its inode table (see --metadata-ttl)")
        }
        "nomultipart"
        | "singlepart_copy_limit"
        | "max_dirty_data"
        | "nocopyapi"
        | "norenameapi"
        | "enable_content_md5"
        | "noxattr"
        | "big_writes"
        | "kernel_cache"
        | "max_write"
        | "max_read"
        | "max_background"
        | "sigv2"
        | "sigv4"
        | "noua" => Meaning::Obsolete("not needed by cosfs"),
        _ => {
            return Err(format!(
                "unknown option {name:?} in -o (the README lists the options cosfs understands)"
            ))
        }
    })
}

/// `cosfs mount ... --config FILE ...`: the file's settings go first, so flags given on the
/// command line (after the file) win for options that take one value.
fn expand_config(argv: Vec<OsString>) -> Result<Routed, String> {
    let Some(pos) = argv.iter().position(|a| a == "--config") else {
        return Ok(Routed {
            argv,
            warnings: Vec::new(),
        });
    };
    let path = argv.get(pos + 1).ok_or("--config needs a file")?.clone();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("config file {}: {e}", Path::new(&path).display()))?;
    let settings = parse_config(&text)
        .map_err(|e| format!("config file {}: {e}", Path::new(&path).display()))?;
    let mut out: Vec<OsString> = argv[..2].to_vec();
    out.extend(settings.into_iter().map(OsString::from));
    out.extend(argv[2..pos].iter().cloned());
    out.extend(argv[pos + 2..].iter().cloned());
    Ok(Routed {
        argv: out,
        warnings: Vec::new(),
    })
}

/// Whether `cosfs mount` has the option `--name`, and if so whether it takes a value.
fn mount_option(name: &str) -> Option<bool> {
    use clap::CommandFactory;
    let cmd = super::Cli::command();
    let mount = cmd.find_subcommand("mount")?;
    let arg = mount.get_arguments().find(|a| a.get_long() == Some(name))?;
    Some(arg.get_action().takes_values())
}

/// `key = value` lines (`#` comments) into `cosfs mount` arguments: `bucket` and `mountpoint`
/// are the two positionals, `name = true` is the flag `--name`, `name = false` leaves it off.
pub fn parse_config(text: &str) -> Result<Vec<String>, String> {
    let (mut bucket, mut mountpoint, mut flags) = (None, None, Vec::new());
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .ok_or(format!("line {}: expected key = value", n + 1))?;
        let key = key.replace('_', "-");
        match key.as_str() {
            "bucket" => bucket = Some(value.to_string()),
            "mountpoint" => mountpoint = Some(value.to_string()),
            "config" | "foreground" => {
                return Err(format!(
                    "line {}: {key} cannot be set in a config file",
                    n + 1
                ))
            }
            _ => match mount_option(&key) {
                None => {
                    return Err(format!(
                        "line {}: unknown option {key:?} (cosfs mount --help lists the options)",
                        n + 1
                    ))
                }
                Some(false) if value == "true" => flags.push(format!("--{key}")),
                Some(false) if value == "false" => {}
                Some(false) => {
                    return Err(format!(
                        "line {}: {key} is on or off: write `{key} = true` or `{key} = false`, not {value:?}",
                        n + 1
                    ))
                }
                Some(true) => flags.extend([format!("--{key}"), value.to_string()]),
            },
        }
    }
    let bucket = bucket.ok_or("no `bucket = NAME-APPID` line")?;
    let mountpoint = mountpoint.ok_or("no `mountpoint = /path` line")?;
    let mut out = vec![bucket, mountpoint];
    out.extend(flags);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn routed(s: &str) -> Result<String, String> {
        route(argv(s)).map(|r| {
            r.argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    #[test]
    fn legacy_and_helper_forms_become_cosfs_mount() {
        let table: &[(&str, &str)] = &[
            // Tencent cosfs on the command line
            (
                "cosfs ex-125 /mnt/cos -o url=https://cos.ap-guangzhou.myqcloud.com,passwd_file=/etc/passwd-cosfs,allow_other",
                "cosfs mount ex-125 /mnt/cos --endpoint https://cos.ap-guangzhou.myqcloud.com --passwd-file /etc/passwd-cosfs --allow-other",
            ),
            // what mount.fuse3 runs for `cosfs#ex-125:/logs /mnt/cos fuse _netdev,...`
            (
                "cosfs ex-125:/logs /mnt/cos -o rw,url=http://127.0.0.1:9000,uid=1000,gid=1000,umask=022,dev,suid",
                "cosfs mount ex-125:/logs /mnt/cos --endpoint http://127.0.0.1:9000 --uid 1000 --gid 1000 --file-mode 0644 --dir-mode 0755",
            ),
            // mount -t fuse.cosfs, helper found as /sbin/mount.fuse.cosfs
            (
                "/sbin/mount.fuse.cosfs ex-125 /mnt/cos -n -v -o rw,noexec,nosuid,nodev,url=http://h:1,_netdev,user,nofail,x-systemd.automount,x-systemd.mount-timeout=30",
                "cosfs mount ex-125 /mnt/cos --noexec --endpoint http://h:1",
            ),
            // the source may keep its fstab spelling; -oOPT glued; -d; -f
            (
                "cosfs cosfs#ex-125 /m -ourl=http://h:1 -o dbglevel=dbg,logfile=/var/log/c.log -f",
                "cosfs mount ex-125 /m --endpoint http://h:1 --log-level debug --log-file /var/log/c.log --foreground",
            ),
            (
                "cosfs ex-125 /m -d -o url=http://h:1,use_cache=/data/cc,parallel_count=4,multipart_size=16,stat_cache_expire=5,readwrite_timeout=60,ro,nonempty,public_bucket=1",
                "cosfs mount ex-125 /m --foreground --log-level debug --endpoint http://h:1 --cache-dir /data/cc --disk-cache /data/cc --upload-concurrency 4 --part-size 16M --metadata-ttl 5 --op-timeout 60 --read-only --nonempty --anonymous",
            ),
            (
                "cosfs ex-125 /m -o url=http://h:1,umask=0077,dbglevel=crit,cam_role=r1",
                "cosfs mount ex-125 /m --endpoint http://h:1 --file-mode 0600 --dir-mode 0700 --log-level error --cam-role r1",
            ),
            (
                "cosfs ex-125 /m -o url=http://h:1,storage_class=standard_ia",
                "cosfs mount ex-125 /m --endpoint http://h:1 --storage-class standard_ia",
            ),
            // subcommands pass through untouched
            ("cosfs serve --root /d", "cosfs serve --root /d"),
            ("cosfs --version", "cosfs --version"),
        ];
        for (input, want) in table {
            assert_eq!(routed(input).as_deref(), Ok(*want), "{input}");
            if want.starts_with("cosfs mount") {
                // and clap accepts every translated value
                let r = route(argv(input)).unwrap();
                <crate::cli::Cli as clap::Parser>::try_parse_from(&r.argv)
                    .unwrap_or_else(|e| panic!("{input}: {e}"));
            }
        }
    }

    #[test]
    fn bad_legacy_lines_name_the_problem() {
        let table: &[(&str, &str)] = &[
            (
                "cosfs ex-125 /m -o url=http://h:1,frobnicate",
                "unknown option \"frobnicate\"",
            ),
            ("cosfs ex-125 /m -o url", "-o url needs a value"),
            (
                "cosfs ex-125 /m -o url=http://h,umask=999",
                "-o umask=999 is not an octal mask",
            ),
            (
                "cosfs ex-125 /m -o url=http://h,dbglevel=loud",
                "dbglevel=loud",
            ),
            (
                "cosfs ex-125 /m -o url=http://h,multipart_size=8M",
                "not a number of MB",
            ),
            (
                "cosfs ex-125 -o url=http://h",
                "expected BUCKET[:/prefix] and MOUNTPOINT, got 1",
            ),
            ("cosfs ex-125 /m /n", "got 3 argument(s)"),
            ("cosfs ex-125 /m -x", "unknown flag \"-x\""),
            ("cosfs ex-125 /m -o", "-o needs a list"),
        ];
        for (input, want) in table {
            let err = routed(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn obsolete_legacy_options_warn_and_mount() {
        let r = route(argv(
            "cosfs ex-125 /m -o url=http://h:1,retries=5,del_cache,noxattr",
        ))
        .unwrap();
        assert_eq!(r.argv.len(), 6, "{:?}", r.argv);
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
        assert!(
            r.warnings[0].starts_with("ignoring -o retries"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn config_files() {
        let text =
            "# /etc/cosfs/media.conf\nbucket = media-1250000000:/site\nmountpoint = /srv/media\n\
                    endpoint = http://127.0.0.1:9000\nallow_other = true\nread-only = false\n\
                    passwd-file = \"/etc/passwd-cosfs\"\n";
        assert_eq!(
            parse_config(text).unwrap().join(" "),
            "media-1250000000:/site /srv/media --endpoint http://127.0.0.1:9000 --allow-other --passwd-file /etc/passwd-cosfs"
        );
        assert!(parse_config("mountpoint = /m\n")
            .unwrap_err()
            .contains("bucket"));
        assert!(parse_config("bucket = b-1\nmountpoint=/m\nnonsense\n")
            .unwrap_err()
            .contains("line 3"));
        assert!(parse_config("bucket = b-1\nmountpoint=/m\nforeground=true\n").is_err());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.conf");
        std::fs::write(&file, text).unwrap();
        let line = format!(
            "cosfs mount --config {} -f --log-level info",
            file.display()
        );
        assert_eq!(
            routed(&line).unwrap(),
            "cosfs mount media-1250000000:/site /srv/media --endpoint http://127.0.0.1:9000 --allow-other --passwd-file /etc/passwd-cosfs -f --log-level info"
        );
        let missing = format!("cosfs mount --config {}/nope.conf", dir.path().display());
        assert!(routed(&missing).unwrap_err().contains("nope.conf"));
    }
}
