//! systemd's readiness protocol (`Type=notify`): one datagram to `$NOTIFY_SOCKET` per state
//! change (`READY=1`, `STOPPING=1`, `STATUS=...`). Without the variable nothing is sent.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Send `state` (newline-separated `KEY=value` assignments); false if not under systemd or
/// the send failed (which never stops the mount).
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = &sent {
        tracing::debug!(error = %e, "sd_notify failed");
    }
    sent.is_ok()
}
