//! `av1-master`: owns the library — the SQLite queue, the scanner and the HTTP API
//! (`/api/v1`, `/healthz`, `/metrics`), the workers' leases, the check and replacement of
//! their results, file transfers and the web UI; `--local-worker` runs a worker beside it.
//!
//! Layering: the top of the workspace — stands on av1-worker (its loop, log and TLS,
//! for `--local-worker`), av1-proto, av1-library and av1core; nothing depends on it.
//!
//! start-up: open the queue, finish or undo interrupted replacements ─▶ listen ─▶ scanner
//! thread (at start, every SCAN_INTERVAL minutes, on `POST /api/v1/scan`) ─▶ a bounded
//! pool of HTTP threads, each with its own queue connection (WAL: readers never block).

mod api;
mod auth;
mod http;
mod scanner;
mod state;
mod transfer;
mod ui;
mod views;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use av1_library::queue::{FileOrder, Queue};
use av1_library::{names, replace, scan};
use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(version = version(), about = "Owns a video library's AV1 transcode: queue, scanner, HTTP API")]
pub struct Config {
    /// Library directories.
    #[arg(env = "MEDIA_DIRS", value_delimiter = ',', required = true)]
    pub media_dirs: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "WEB_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "WEB_PORT", default_value_t = 8090)]
    pub port: u16,
    /// A file holding the admin token (instead of AV1_TOKEN in the environment; never a
    /// flag, which `ps` would show). Without either, a token is generated at first start
    /// and kept beside the queue database (`token`, mode 0600).
    #[arg(long, env = "AV1_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// No token at all: anyone who can reach the port controls the library.
    #[arg(long)]
    pub insecure_no_token: bool,
    /// Host names the master answers to besides IP addresses and localhost (a LAN name,
    /// a reverse proxy's), comma-separated: other names are refused (DNS rebinding).
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first);
    /// needs TLS_KEY. Workers then use https:// (docs/tls.md).
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1, unencrypted) of TLS_CERT.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Queue database [default: $XDG_STATE_HOME/av1/master.sqlite].
    #[arg(long, env = "AV1_DB")]
    pub db: Option<PathBuf>,
    /// Minutes between scans of the library (0: only at start and on request).
    #[arg(long, env = "SCAN_INTERVAL", default_value_t = 60)]
    pub scan_interval: u64,
    /// Also run a worker inside this process (shared storage: it sees the library), so
    /// one machine has the whole product.
    #[arg(long, env = "LOCAL_WORKER", value_parser = clap::builder::BoolishValueParser::new())]
    pub local_worker: bool,
    /// Connections open at once [default: from the open-files limit, each takes two
    /// descriptors and a quarter stays free, at most 4096].
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address (a worker holds two or three,
    /// a page a few); beyond, new ones are closed as soon as accepted.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64)]
    pub max_connections_per_address: usize,
    /// HTTP threads (requests served at the same time).
    #[arg(long, default_value_t = 16)]
    pub http_threads: usize,
    /// Seconds a worker's lease lasts without a heartbeat before its job goes back to the queue.
    #[arg(long, env = "LEASE_TIMEOUT", default_value_t = 60)]
    pub lease_timeout: u64,
    /// Which pending file comes first: oldest, newest, largest, smallest.
    #[arg(long, env = "FILE_ORDER", default_value = "oldest")]
    pub file_order: FileOrder,
    /// A result replaces its original only when at least this many percent smaller.
    #[arg(long, env = "MIN_SAVINGS_PERCENT", default_value_t = 5.0, value_parser = av1_library::job::savings_percent)]
    pub min_savings: f64,
    /// Keep each original as NAME.bak beside its result.
    #[arg(long, env = "TESTING_MODE", value_parser = clap::builder::BoolishValueParser::new())]
    pub testing_mode: bool,
    /// Owner of the results (default: the original's).
    #[arg(long, env = "PUID", requires = "pgid")]
    pub puid: Option<u32>,
    /// Group of the results (default: the original's).
    #[arg(long, env = "PGID", requires = "puid")]
    pub pgid: Option<u32>,
    /// The encoder settings: the scanner plans with them and every worker encodes with
    /// them (but for its own `--threads`).
    #[command(flatten)]
    pub encoder: av1_worker::cli::EncoderArgs,
}

fn version() -> &'static str {
    Box::leak(
        format!("{} (SVT-AV1 {})", env!("CARGO_PKG_VERSION"), av1core::encode::svt::version())
            .into_boxed_str(),
    )
}

fn main() -> std::process::ExitCode {
    if std::env::var_os("SVT_LOG").is_none() {
        std::env::set_var("SVT_LOG", "1");
    }
    av1_worker::logging::init();
    if let Err(e) = av1_library::fault::check_environment() {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match run(Config::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let roots = scan::canonical_roots(&cfg.media_dirs)?;
    let db = cfg.db.clone().unwrap_or_else(default_db);
    let tokens = tokens(&cfg, os_parent(&db))?;
    http::raise_open_files_limit();
    let lease_timeout = Duration::from_secs(cfg.lease_timeout.max(1));
    recover(&db, lease_timeout)?;

    // The encoder settings and tables are the master's: the scanner plans with them and
    // workers fetch them (`GET /api/v1/config`), again whenever the version changes.
    let settings = cfg.encoder.settings()?;
    let config_version = blake3::hash(serde_json::to_string(&settings)?.as_bytes()).to_hex()[..16].to_owned();
    let scanner = Arc::new(scanner::Scanner::start(
        db.clone(),
        roots.clone(),
        settings.clone(),
        (cfg.scan_interval > 0).then(|| Duration::from_secs(cfg.scan_interval * 60)),
    ));

    let limits = http::Limits { total: cfg.max_connections, per_address: cfg.max_connections_per_address };
    let tls = http::Tls::read(cfg.tls_cert.as_deref(), cfg.tls_key.as_deref())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = http::listen(SocketAddr::new(cfg.bind, cfg.port), limits, tls)?;
    let addr = server.server_addr().to_ip().context("not an IP listener")?;
    tracing::info!("listening on {scheme}://{addr} (library: {:?}, queue: {})", roots, db.display());
    let order = cfg.file_order;
    spawn_lease_keeper(db.clone());
    let policy = av1_library::deliver::Policy {
        settings,
        min_savings_percent: cfg.min_savings,
        replace: replace::Options { testing_mode: cfg.testing_mode, owner: cfg.puid.zip(cfg.pgid) },
    };
    let state = Arc::new(state::State {
        db,
        roots,
        tokens: tokens.clone(),
        hosts: auth::Hosts::new(&cfg.allowed_hosts),
        scanner,
        lease_timeout,
        order,
        policy,
        transfers: Default::default(),
        stop: Default::default(),
        streams: Default::default(),
        config_version,
    });

    // SIGTERM / Ctrl-C: stop taking requests and exit (every write is a committed
    // SQLite transaction; nothing is half done).
    let drain = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (drain_on_signal, stopping) = (drain.clone(), state.clone());
    if let Err(e) = ctrlc::set_handler(move || {
        drain_on_signal.store(true, std::sync::atomic::Ordering::SeqCst);
        stopping.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }) {
        tracing::warn!("no signal handler: {e}");
    }
    if cfg.local_worker {
        start_local_worker(&cfg, &state, addr, scheme, &tokens, drain.clone());
    }
    serve_http(&server, &state, cfg.http_threads);
    tracing::info!("stopped");
    Ok(())
}

/// Start-up: finishes or undoes the replacements a crash interrupted; jobs still leased
/// to workers get a fresh timeout (they may have gone on encoding while the master was
/// down); results left unchecked are queued again.
fn recover(db: &std::path::Path, lease_timeout: Duration) -> anyhow::Result<()> {
    let mut queue = Queue::open(db).with_context(|| format!("opening the queue {}", db.display()))?;
    for r in replace::recover(&mut queue)? {
        tracing::info!("interrupted replacement handled at start: {r:?}");
    }
    let extended = queue.extend_leases(lease_timeout)?;
    if extended > 0 {
        tracing::info!("{extended} job(s) still leased to workers: waiting for their heartbeats");
    }
    let requeued = queue.requeue_unleased()?;
    if requeued > 0 {
        tracing::info!(
            "{requeued} file(s) whose result was being checked when the master stopped are queued again"
        );
    }
    Ok(())
}

/// `--local-worker`: the worker loop in a thread of this process, calling the address
/// the master listens on with the admin token.
fn start_local_worker(
    cfg: &Config,
    state: &state::State,
    addr: SocketAddr,
    scheme: &str,
    tokens: &auth::Tokens,
    drain: Arc<std::sync::atomic::AtomicBool>,
) {
    // The address we listen on (loopback for a wildcard): while this process runs,
    // no other can listen there, so the token goes to no one else.
    let ip = match addr.ip() {
        ip if !ip.is_unspecified() => ip,
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    };
    let url = format!("{scheme}://{}", SocketAddr::new(ip, addr.port()));
    let local = av1_worker::remote::RemoteConfig {
        token: tokens.admin().map(|t| av1_worker::remote::Secret(t.to_owned())),
        name: Some(format!("{}-local", rustix::system::uname().nodename().to_string_lossy())),
        path_map: Vec::new(),
        nice_level: 19,
        ionice_class: 3,
        min_savings: cfg.min_savings,
        file_distribution: av1_worker::remote::FileDistribution::Never,
        state_dir: None,
        poll: 2.0,
        trust: av1_worker::tls::Trust::OwnProcess,
    };
    let fallback = state.policy.settings.clone();
    let threads = cfg.encoder.threads;
    std::thread::Builder::new()
        .name("local-worker".into())
        .spawn(move || {
            // Its own thread: the lowered priority stays with it and its encoder.
            if let Err(e) = av1_worker::remote::run(&url, &local, fallback, threads, drain) {
                tracing::error!("the local worker stopped: {e:#}");
            }
        })
        .expect("spawning the local worker");
    tracing::info!("a local worker works for this master");
}

/// The HTTP threads until a stop: front threads answer the short calls; as many bulk
/// threads take transfers, result checks and unread bodies.
fn serve_http(server: &Arc<tiny_http::Server>, state: &Arc<state::State>, threads: usize) {
    // A bounded wait list for the bulk threads (503 beyond it).
    let threads = threads.max(1);
    let (bulk_tx, bulk_rx) = crossbeam_channel::bounded(16 * threads);
    std::thread::scope(|s| {
        for i in 0..threads {
            let (server, front_state, bulk_tx) = (server.clone(), state.clone(), bulk_tx.clone());
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn_scoped(s, move || api::serve(&server, &front_state, &bulk_tx))
                .expect("spawning an HTTP thread");
            let (state, bulk_rx) = (state.clone(), bulk_rx.clone());
            std::thread::Builder::new()
                .name(format!("bulk-{i}"))
                .spawn_scoped(s, move || api::serve_bulk(&bulk_rx, &state))
                .expect("spawning an HTTP thread");
        }
    });
}

/// The admin token (`AV1_TOKEN`, `--token-file`, or kept in `state_dir`) and the worker
/// token (`AV1_WORKER_TOKEN`), read from the environment, never from a flag.
fn tokens(cfg: &Config, state_dir: &std::path::Path) -> anyhow::Result<auth::Tokens> {
    let env = |k: &str| std::env::var(k).ok();
    let worker = env("AV1_WORKER_TOKEN");
    if cfg.insecure_no_token {
        if worker.is_some() || env("AV1_TOKEN").is_some() || cfg.token_file.is_some() {
            bail!("--insecure-no-token and a token exclude each other");
        }
        tracing::warn!("--insecure-no-token: anyone who can reach this port controls the library");
        return Ok(auth::Tokens::new(None, None));
    }
    let (admin, kept) = auth::admin_token(env("AV1_TOKEN"), cfg.token_file.as_deref(), state_dir)?;
    if let Some(path) = kept {
        tracing::info!("the admin token is in {} (give it to the web page and to workers)", path.display());
    }
    if worker.as_deref().is_some_and(|w| w.is_empty() || w == admin) {
        bail!("AV1_WORKER_TOKEN must be set to something other than the admin token");
    }
    Ok(auth::Tokens::new(Some(admin), worker))
}

fn os_parent(p: &std::path::Path) -> &std::path::Path {
    av1core::os::parent(p)
}

/// Every second, gives back the jobs whose lease ran out (or fails them after the
/// last attempt).
fn spawn_lease_keeper(db: PathBuf) {
    std::thread::Builder::new()
        .name("leases".into())
        .spawn(move || {
            let mut queue = None;
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if queue.is_none() {
                    queue = Queue::open(&db).map_err(|e| tracing::error!("lease keeper: {e}")).ok();
                }
                if let Some(q) = queue.as_mut() {
                    match q.expire_leases() {
                        Ok(expired) => {
                            for e in expired {
                                let what = if e.failed {
                                    "on its last attempt: the file failed"
                                } else {
                                    "the file is back in the queue"
                                };
                                tracing::warn!(file = e.file_id, "lease ran out, {what}");
                                names::remove_lease_files(&e.path, &e.lease);
                            }
                        }
                        Err(e) => tracing::error!("expiring leases: {e}"),
                    }
                }
            }
        })
        .expect("spawning the lease keeper");
}

/// `$XDG_STATE_HOME/av1/master.sqlite`, else `~/.local/state/av1/master.sqlite`.
fn default_db() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/state")
    });
    state.join("av1/master.sqlite")
}
