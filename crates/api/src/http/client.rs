//! Who the client is: its address (through `server.trusted_proxies`), and the origin it
//! reached us by, for the cross-site check.
//!
//! Only when the TCP peer is a trusted proxy are `Forwarded` (RFC 7239) and
//! `X-Forwarded-For` read, and then the client is the nearest hop that is not a trusted proxy:
//! the list is walked from the right (the hop our peer saw), skipping trusted proxies, because
//! everything left of the first untrusted hop was written by the client and may be forged.
//! When a trusted peer sends both headers and they name different clients, the peer itself is
//! taken: a proxy writes one of them, and the other came from the client, so neither can be
//! believed (a request sent that way is counted under the proxy's address, which harms only
//! itself). actix's `ConnectionInfo` is not used: it believes these headers from anyone.
//!
//! Parsing is written here: the headers are simple, and no well-kept crate parses both with
//! the trust walk (which is the part that matters).

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HOST};
use actix_web::HttpRequest;
use ipnet::IpNet;

use crate::settings::Settings;

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

fn trusted(addr: IpAddr, proxies: &[IpNet]) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    proxies.iter().any(|net| net.contains(&addr))
}

/// Splits `text` at `sep` outside double quotes.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            out
        }
        None => value.to_owned(),
    }
}

/// A node of `Forwarded: for=` or `X-Forwarded-For`: `192.0.2.1`, `192.0.2.1:80`,
/// `[2001:db8::1]`, `[2001:db8::1]:80` or a bare IPv6 address. `None` for `unknown`,
/// obfuscated names and garbage.
fn node_addr(node: &str) -> Option<IpAddr> {
    // `::ffff:192.0.2.1` is 192.0.2.1: one client, whichever way a header writes it.
    node_addr_as_written(node).map(|addr| match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    })
}

fn node_addr_as_written(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse().ok();
    }
    node.parse().ok().or_else(|| {
        let (host, port) = node.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    })
}

/// One hop of the forwarding chain: the address a proxy saw, and what it saw asked for.
#[derive(Debug, Default, Clone)]
struct Hop {
    addr: Option<IpAddr>,
    proto: Option<String>,
    host: Option<String>,
}

fn values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| split_unquoted(v, ','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    values(headers, &FORWARDED)
        .map(|element| {
            let mut hop = Hop::default();
            for pair in split_unquoted(element, ';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = unquote(value);
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.addr = node_addr(&value),
                    "proto" => hop.proto = Some(value.to_ascii_lowercase()),
                    "host" => hop.host = Some(value),
                    _ => {}
                }
            }
            hop
        })
        .collect()
}

fn x_forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    values(headers, &X_FORWARDED_FOR)
        .map(|node| Hop {
            addr: node_addr(node),
            ..Hop::default()
        })
        .collect()
}

/// The nearest untrusted hop of `hops` (walked from the right); `Err(())` when a hop cannot
/// be read (`unknown`, obfuscated), which stops the walk. `Ok(None)`: every hop is trusted.
fn nearest_untrusted(hops: &[Hop], proxies: &[IpNet]) -> Result<Option<Hop>, ()> {
    for hop in hops.iter().rev() {
        match hop.addr {
            Some(addr) if trusted(addr, proxies) => continue,
            Some(_) => return Ok(Some(hop.clone())),
            None => return Err(()),
        }
    }
    Ok(None)
}

/// The hop that describes the client, when the peer is a trusted proxy and the headers
/// name one.
fn client_hop(req: &HttpRequest, proxies: &[IpNet]) -> Option<Hop> {
    let peer = req.peer_addr()?.ip();
    if proxies.is_empty() || !trusted(peer, proxies) {
        return None;
    }
    let headers = req.headers();
    let from = |hops: Vec<Hop>| {
        (!hops.is_empty()).then(|| {
            nearest_untrusted(&hops, proxies)
                .ok()
                .map(|hop| hop.unwrap_or_else(|| hops[0].clone()))
        })
    };
    match (
        from(forwarded_hops(headers)),
        from(x_forwarded_hops(headers)),
    ) {
        (Some(a), Some(b)) if a.as_ref().map(|h| h.addr) != b.as_ref().map(|h| h.addr) => None,
        (Some(a), _) => a,
        (None, b) => b.flatten(),
    }
}

/// The client's address: the peer's, or — from a trusted proxy — the nearest untrusted hop
/// of `Forwarded` / `X-Forwarded-For`.
pub fn client_addr(req: &HttpRequest, proxies: &[IpNet]) -> Option<IpAddr> {
    client_hop(req, proxies)
        .and_then(|hop| hop.addr)
        .or_else(|| req.peer_addr().map(|a| a.ip()))
}

fn last_value(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    values(headers, name).last().map(str::to_owned)
}

/// The origin (`scheme://host[:port]`, serialized as browsers send `Origin`) the request
/// reached us by: the `Host` header (or HTTP/2 authority) and https when TLS is on or
/// `auth.cookie_secure` is set; from a
/// trusted proxy, the host and scheme it says the client asked for.
pub fn own_origin(req: &HttpRequest, settings: &Settings) -> Option<String> {
    // With TLS, or behind a TLS-terminating proxy (which `auth.cookie_secure` says), browsers
    // reach us by https.
    let direct_scheme = if settings.cookie_secure() {
        "https"
    } else {
        "http"
    };
    let direct_host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let proxies = &settings.server.trusted_proxies;
    let peer_trusted = req.peer_addr().is_some_and(|p| trusted(p.ip(), proxies));
    let (mut scheme, mut host) = (direct_scheme.to_owned(), direct_host);
    if peer_trusted {
        let headers = req.headers();
        let hop = client_hop(req, proxies).unwrap_or_default();
        if let Some(proto) = hop
            .proto
            .or_else(|| last_value(headers, &X_FORWARDED_PROTO))
        {
            scheme = proto.to_ascii_lowercase();
        }
        if let Some(forwarded_host) = hop.host.or_else(|| last_value(headers, &X_FORWARDED_HOST)) {
            host = Some(forwarded_host);
        }
    }
    canonical_origin(&format!("{scheme}://{}", host?))
}

/// `text` as an origin the way browsers serialize it (lower case, no default port), or
/// `None` when it is not an http(s) origin.
pub fn canonical_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn addr_of(peer: &str, headers: &[(&str, &str)], proxies: &[&str]) -> Option<IpAddr> {
        let mut req = TestRequest::default().peer_addr(peer.parse().unwrap());
        for (name, value) in headers {
            req = req.append_header((*name, *value));
        }
        client_addr(&req.to_http_request(), &nets(proxies))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(addr_of("192.0.2.1:5000", &xff, &[]), ip("192.0.2.1"));
        assert_eq!(
            addr_of("192.0.2.1:5000", &xff, &["10.0.0.0/8"]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let proxies = ["10.0.0.0/8"];
        let peer = "10.0.0.1:5000";
        let xff = [("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.0.0.7")];
        assert_eq!(addr_of(peer, &xff, &proxies), ip("203.0.113.9"));
        let two = [
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(addr_of(peer, &two, &proxies), ip("203.0.113.9"));
        let fwd = [(
            "forwarded",
            "for=198.51.100.1, for=\"[2001:db8::5]:4711\";proto=https, for=10.0.0.9:80",
        )];
        assert_eq!(addr_of(peer, &fwd, &proxies), ip("2001:db8::5"));
        let all_trusted = [("x-forwarded-for", "10.1.1.1, 10.2.2.2")];
        assert_eq!(addr_of(peer, &all_trusted, &proxies), ip("10.1.1.1"));
        assert_eq!(addr_of(peer, &[], &proxies), ip("10.0.0.1"));
    }

    #[test]
    fn unreadable_or_conflicting_headers_leave_the_peer() {
        let proxies = ["10.0.0.0/8"];
        let peer = "10.0.0.1:5000";
        for headers in [
            vec![("forwarded", "for=unknown")],
            vec![("x-forwarded-for", "203.0.113.9, _hidden")],
            vec![
                ("forwarded", "for=198.51.100.1"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        ] {
            assert_eq!(
                addr_of(peer, &headers, &proxies),
                ip("10.0.0.1"),
                "{headers:?}"
            );
        }
        let agreeing = [
            ("forwarded", "for=203.0.113.9"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(addr_of(peer, &agreeing, &proxies), ip("203.0.113.9"));
        let mapped = [
            ("forwarded", "for=\"[::ffff:203.0.113.9]\""),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(addr_of(peer, &mapped, &proxies), ip("203.0.113.9"));
    }

    #[test]
    fn own_origin_follows_host_tls_and_trusted_proxies() {
        let mut settings = Settings::defaults().unwrap();
        let req = TestRequest::default()
            .peer_addr("192.0.2.1:5000".parse().unwrap())
            .insert_header(("host", "Status.Example:80"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        assert_eq!(
            own_origin(&req, &settings).as_deref(),
            Some("http://status.example")
        );
        settings.server.trusted_proxies = nets(&["192.0.2.0/24"]);
        assert_eq!(
            own_origin(&req, &settings).as_deref(),
            Some("https://status.example:80")
        );
    }
}
