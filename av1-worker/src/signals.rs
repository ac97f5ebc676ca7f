//! Ctrl-C and SIGTERM: the first asks the running job to stop cleanly (its temporary
//! file removed, the file back in the queue); a second one exits at once — still
//! losing nothing, since every step on disk is crash-safe and the next start cleans up.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use av1_library::job::{Control, Stop};

/// Installs the handler; `doing` says what the first signal leads to.
pub fn install(doing: &'static str) -> Arc<Control> {
    let control = Arc::new(Control::new());
    let seen = AtomicU8::new(0);
    let c = control.clone();
    let result = ctrlc::set_handler(move || {
        if seen.fetch_add(1, Ordering::SeqCst) > 0 {
            eprintln!("\nsecond signal: quitting now (the next start cleans up)");
            std::process::exit(130);
        }
        c.request(Stop::Shutdown);
        eprintln!("\nstopping: {doing} (press Ctrl-C again to quit at once)");
    });
    if let Err(e) = result {
        tracing::warn!("no Ctrl-C handler: {e}");
    }
    control
}

/// The worker mode's handler: the first signal sets the returned flag (finish the
/// current job, claim nothing new); a second one exits at once — the lease then runs
/// out and the master gives the job to another worker.
pub fn install_drain() -> Arc<std::sync::atomic::AtomicBool> {
    let drain = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = drain.clone();
    let result = ctrlc::set_handler(move || {
        if d.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond signal: quitting now (the master will hand the job to another worker)");
            std::process::exit(130);
        }
        eprintln!("\ndraining: finishing the current job, taking no new one (again to quit at once)");
    });
    if let Err(e) = result {
        tracing::warn!("no Ctrl-C handler: {e}");
    }
    drain
}
