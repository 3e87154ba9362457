//! Connections per client address: at most `server.max_connections_per_client` open at once
//! from one address (IPv6: one /64); peers in `server.trusted_proxies` are exempt, since every
//! client behind them arrives from their address.
//!
//! Why: the global `server.max_connections` bounds what the service holds, but one client
//! could take all of it — request headers after a connection's first request, and chunked
//! bodies, can be trickled for as long as bytes keep coming (actix bounds only the first
//! request's head). With this cap one address holds at most its share.
//!
//! Written here because actix has no per-peer limit: the check runs in `on_connect`, which
//! sees the accepted socket before anything is read. A connection past the cap is answered
//! `503` with an alert (plain HTTP; over TLS it is simply closed) and shut down, so the server
//! reads end-of-stream and drops it. The count is held by a [`ConnectionSlot`] in the
//! connection's data, released when the connection ends.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::{Arc, Mutex};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use ipnet::IpNet;

/// What a connection is counted under: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6Prefix(u64),
}

impl ClientKey {
    fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(u32::from(v4)),
                None => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The open connections of each client address. Entries go when their count reaches zero, so
/// the map holds at most one key per open connection.
pub struct ClientConnections {
    max_per_client: usize,
    exempt: Vec<IpNet>,
    open: Mutex<HashMap<ClientKey, usize>>,
}

/// One admitted connection's place in its client's count; released on drop.
pub struct ConnectionSlot {
    owner: Arc<ClientConnections>,
    key: ClientKey,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The answer to a connection past the cap, written straight to its socket.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 141\r\n\
\r\n\
{\"alerts\":[{\"text\":\"too many connections from your address (server.max_connections_per_client); close some and try again\",\"level\":\"error\"}]}\n";

impl ClientConnections {
    pub fn new(max_per_client: usize, exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(ClientConnections {
            max_per_client,
            exempt,
            open: Mutex::default(),
        })
    }

    /// A place for one more connection from `peer`; `None` past the cap. Exempt peers get
    /// `Some` without being counted.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Option<ConnectionSlot>> {
        let unmapped = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        if self.exempt.iter().any(|net| net.contains(&unmapped)) {
            return Some(None);
        }
        let key = ClientKey::of(peer);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max_per_client {
            return None;
        }
        *count += 1;
        Some(Some(ConnectionSlot {
            owner: self.clone(),
            key,
        }))
    }

    /// Clients with a connection open now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The `on_connect` hook: counts the connection, or refuses it past its client's cap.
    pub fn on_connect(self: &Arc<Self>, conn: &dyn Any, data: &mut Extensions) {
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<TcpStream>;
        let (tcp, plain) = match (conn.downcast_ref::<TcpStream>(), conn.downcast_ref::<Tls>()) {
            (Some(tcp), _) => (tcp, true),
            (None, Some(tls)) => (tls.get_ref().0, false),
            (None, None) => return,
        };
        let Ok(peer) = tcp.peer_addr() else {
            return;
        };
        match self.admit(peer.ip()) {
            Some(Some(slot)) => {
                data.insert(slot);
            }
            Some(None) => {}
            None => {
                tracing::warn!(
                    client = %peer.ip(),
                    limit = self.max_per_client,
                    "connection refused: server.max_connections_per_client reached"
                );
                let socket = socket2::SockRef::from(tcp);
                if plain {
                    // A fresh socket's send buffer takes this at once; if not, it is closed
                    // all the same.
                    let _ = socket.send(REFUSAL);
                }
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_declares_its_length() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["alerts"][0]["level"], "error");
    }

    #[test]
    fn a_client_is_capped_per_address_and_ipv6_per_64() {
        let caps = ClientConnections::new(2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = caps.admit(a).unwrap();
        let second = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none(), "a third from one address");
        assert!(caps.admit("192.0.2.2".parse().unwrap()).is_some());
        assert!(
            caps.admit("::ffff:192.0.2.1".parse().unwrap()).is_none(),
            "the mapped form is the same client"
        );
        drop(first);
        let third = caps.admit(a).unwrap();
        let v6 = |s: &str| caps.admit(s.parse().unwrap());
        let (x, y) = (v6("2001:db8::1").unwrap(), v6("2001:db8::ffff:2").unwrap());
        assert!(v6("2001:db8:0:0:abcd::3").is_none(), "one /64");
        assert!(v6("2001:db8:0:1::1").is_some(), "another /64");
        for _ in 0..10 {
            assert!(matches!(
                caps.admit("10.1.2.3".parse().unwrap()),
                Some(None)
            ));
        }
        drop((second, third, x, y));
        assert_eq!(caps.clients(), 0, "counts go with their connections");
    }
}
