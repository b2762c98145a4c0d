//! `cosfs serve`: flags -> `server::ServerConfig`, start, print the endpoint, wait for a signal.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::cos::credentials::{all_from_passwd_file, Credentials};
use crate::server::{self, AuthMode, FaultConfig, ServerConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory that holds the buckets (one subdirectory each); created if missing.
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on. Port 0 picks a free port; the chosen endpoint is printed.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// Create this bucket at start (repeatable). Buckets can also be created with PUT Bucket.
    #[arg(long = "bucket", value_name = "NAME-APPID")]
    pub buckets: Vec<String>,
    /// SecretId that requests must be signed with (with --secret-key).
    #[arg(long, env = "COSFS_SERVE_SECRET_ID", requires = "secret_key")]
    pub secret_id: Option<String>,
    /// SecretKey matching --secret-id.
    #[arg(
        long,
        env = "COSFS_SERVE_SECRET_KEY",
        requires = "secret_id",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// Accept every key pair of a cosfs passwd file (bucket:SecretId:SecretKey lines).
    #[arg(long, conflicts_with = "secret_id")]
    pub passwd_file: Option<PathBuf>,
    /// Accept unsigned requests; signatures are not checked.
    #[arg(long, conflicts_with_all = ["secret_id", "passwd_file"])]
    pub anonymous: bool,
    /// Fault injection: milliseconds added to every request.
    #[arg(long, default_value_t = 0)]
    pub fault_latency_ms: u64,
    /// Fault injection: body bandwidth cap per request, bytes per second (0 = none).
    #[arg(long, default_value_t = 0)]
    pub fault_bandwidth: u64,
    /// Fault injection: fraction (0-1) of requests answered 503 SlowDown.
    #[arg(long, default_value_t = 0.0, value_parser = super::values::fraction, allow_negative_numbers = true)]
    pub fault_503_rate: f64,
    /// Fault injection: fraction of requests answered 500 InternalError.
    #[arg(long, default_value_t = 0.0, value_parser = super::values::fraction, allow_negative_numbers = true)]
    pub fault_500_rate: f64,
    /// Fault injection: fraction of requests whose connection is dropped (GET: mid-body).
    #[arg(long, default_value_t = 0.0, value_parser = super::values::fraction, allow_negative_numbers = true)]
    pub fault_drop_rate: f64,
    /// Fault injection: fraction of requests never answered.
    #[arg(long, default_value_t = 0.0, value_parser = super::values::fraction, allow_negative_numbers = true)]
    pub fault_hang_rate: f64,
    /// Fault injection: fraction of requests carried out whose answer is lost (the
    /// connection is cut after the work is done).
    #[arg(long, default_value_t = 0.0, value_parser = super::values::fraction, allow_negative_numbers = true)]
    pub fault_lose_answer_rate: f64,
    /// Fault injection applies only to these HTTP methods (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub fault_methods: Vec<String>,
    /// Seconds added to the server's clock, to exercise clock-skew handling.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_offset_secs: i64,
    /// Milliseconds a POST Object restore of an ARCHIVE or DEEP_ARCHIVE object takes before
    /// the object can be read.
    #[arg(long, default_value_t = 1000)]
    pub restore_delay_ms: u64,
    /// The region its buckets are in, as GET Bucket location answers it.
    #[arg(long, default_value = crate::server::DEFAULT_REGION)]
    pub region: String,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_parser = super::values::LOG_LEVELS)]
    pub log_level: String,
}

impl ServeArgs {
    pub fn to_config(&self) -> Result<ServerConfig, String> {
        let auth = match (&self.secret_id, &self.secret_key, &self.passwd_file, self.anonymous) {
            (Some(id), Some(key), None, false) => {
                AuthMode::Keys(vec![Credentials::new(id.clone(), key.clone())])
            }
            (None, None, Some(path), false) => {
                let keys = all_from_passwd_file(path).map_err(|e| e.to_string())?;
                if keys.is_empty() {
                    return Err(format!("{} holds no key pairs", path.display()));
                }
                AuthMode::Keys(keys)
            }
            (None, None, None, true) => AuthMode::Anonymous,
            _ => {
                return Err(
                    "choose how requests are authenticated: --secret-id ID --secret-key KEY, --passwd-file FILE, or --anonymous".into(),
                )
            }
        };
        Ok(ServerConfig {
            root: self.root.clone(),
            listen: self.listen,
            auth,
            buckets: self.buckets.clone(),
            faults: FaultConfig {
                latency_ms: self.fault_latency_ms,
                bandwidth: self.fault_bandwidth,
                rate_503: self.fault_503_rate,
                next_503: 0,
                rate_500: self.fault_500_rate,
                drop_rate: self.fault_drop_rate,
                hang_rate: self.fault_hang_rate,
                lose_answer_rate: self.fault_lose_answer_rate,
                methods: self.fault_methods.clone(),
                clock_offset_secs: self.clock_offset_secs,
                omit_part_crc64: false,
                restore_delay_ms: self.restore_delay_ms,
                complete_delay_ms: 0,
            },
            region: self.region.clone(),
        })
    }
}

pub fn run(args: ServeArgs) -> i32 {
    super::init_logging(&args.log_level);
    let cfg = match args.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cosfs serve: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cosfs serve: cannot start runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let root = cfg.root.clone();
        let srv = match server::start(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cosfs serve: cannot serve {}: {e}", root.display());
                return 1;
            }
        };
        // The first stdout line is the endpoint; scripts read it to learn a port-0 choice.
        // Nobody may be reading any more (`| head -1`): that is no reason to stop serving.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "cosfs serve: listening on {}", srv.endpoint());
        let _ = out.flush();
        tracing::info!(endpoint = %srv.endpoint(), root = %root.display(), "serving");
        super::wait_for_signal().await;
        srv.stop();
        0
    })
}
