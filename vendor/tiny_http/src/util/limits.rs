//! PATCH (av1): how many connections may be open at once, overall and per client
//! address. Upstream starts a thread for every connection, without bound: idle
//! connections alone could use up the process's file descriptors and threads.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

static MAX_TOTAL: AtomicUsize = AtomicUsize::new(usize::MAX);
static MAX_PER_ADDRESS: AtomicUsize = AtomicUsize::new(usize::MAX);
static OPEN: Mutex<Option<Open>> = Mutex::new(None);

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Sets the most connections open at once (`total`), and from one client address
/// (`per_address`), for connections accepted from now on. Beyond either, a new
/// connection is closed as soon as it is accepted.
pub fn set_connection_limits(total: usize, per_address: usize) {
    MAX_TOTAL.store(total.max(1), Relaxed);
    MAX_PER_ADDRESS.store(per_address.max(1), Relaxed);
}

/// Who a connection is from, for the per-address limit: an IPv4 address, or an IPv6
/// address's /64 (one host or one LAN gets a whole /64 to choose from).
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One open connection, counted until dropped.
pub(crate) struct ConnectionSlot(Option<IpAddr>);

impl ConnectionSlot {
    /// A slot for a connection from `peer`, or `None` when a limit is reached.
    pub(crate) fn take(peer: Option<SocketAddr>) -> Option<ConnectionSlot> {
        let ip = peer.map(|p| client(p.ip()));
        let mut guard = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        let open = guard.get_or_insert_with(Open::default);
        if open.total >= MAX_TOTAL.load(Relaxed) {
            return None;
        }
        if let Some(ip) = ip {
            let n = open.by_address.entry(ip).or_insert(0);
            if *n >= MAX_PER_ADDRESS.load(Relaxed) {
                return None;
            }
            *n += 1;
        }
        open.total += 1;
        Some(ConnectionSlot(ip))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut guard = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        let Some(open) = guard.as_mut() else { return };
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.0 {
            if let Some(n) = open.by_address.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.by_address.remove(&ip);
                }
            }
        }
    }
}
