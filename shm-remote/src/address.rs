//! Where a manager's objects live: [`Address::parse`] tells a local manager name
//! (shared memory on this machine) from a Redis URL
//! `redis://[user:password@]host[:port][/namespace]` (`rediss://` for TLS).
//!
//! The URL's path is the *namespace* (every key of the manager starts with
//! `<namespace>:`), not a database number as in other Redis clients: several
//! managers share one server, each under its own prefix, all in database 0.

use crate::error::{Error, Result};

/// The default Redis port.
pub const DEFAULT_PORT: u16 = 6379;

/// The namespace of a URL without a path.
pub const DEFAULT_NAMESPACE: &str = "shm";

/// A parsed address.
///
/// ```
/// use shm_remote::address::Address;
/// assert!(matches!(Address::parse("jobs")?, Address::Local(n) if n == "jobs"));
/// let Address::Redis(r) = Address::parse("redis://ann:s%40cret@db.example:7000/jobs")? else { panic!() };
/// assert_eq!((r.host.as_str(), r.port, r.namespace.as_str()), ("db.example", 7000, "jobs"));
/// assert_eq!((r.username.as_deref(), r.password.as_deref()), (Some("ann"), Some("s@cret")));
/// assert!(!r.tls);
/// assert_eq!(r.to_string(), "redis://ann:***@db.example:7000/jobs"); // no password shown
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum Address {
    /// A shared-memory manager on this machine, by name (see
    /// [`shm_manager::SharedMemoryManager::named`]).
    Local(String),
    /// A namespace on a Redis (or Valkey) server.
    Redis(RedisAddress),
}

/// A Redis server and a namespace on it.
///
/// ```
/// let r = shm_remote::address::RedisAddress::parse("rediss://[::1]/")?;
/// assert_eq!((r.host.as_str(), r.port, r.tls), ("::1", 6379, true));
/// assert_eq!(r.namespace, "shm");
/// # Ok::<(), shm_remote::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// `rediss://`: TLS; the server's certificate is checked against the system's
    /// roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` name a private CA). There is no way to
    /// turn the check off.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name (percent-decoded).
    pub username: Option<String>,
    /// Password (percent-decoded).
    pub password: Option<String>,
    /// The key prefix: 1 to 64 characters of `[A-Za-z0-9_.-]`.
    pub namespace: String,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Local(n) => write!(f, "Local({n:?})"),
            Address::Redis(r) => write!(f, "Redis({r})"),
        }
    }
}

impl std::fmt::Debug for RedisAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password (Debug output ends up in logs and panics).
        write!(f, "{self}")
    }
}

impl std::fmt::Display for RedisAddress {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        match (&self.username, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (Some(u), None) => write!(f, "{u}@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (None, None) => {}
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.namespace)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Local(n) => write!(f, "{n}"),
            Address::Redis(r) => write!(f, "{r}"),
        }
    }
}

/// The address with the password (between `:` and `@` of the authority) masked, for
/// error messages about addresses that do not parse.
fn redact(address: &str) -> String {
    if let Some((scheme, rest)) = address.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let user = rest[..at].split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
        }
    }
    address.to_owned()
}

fn invalid(address: &str, reason: impl Into<String>) -> Error {
    Error::InvalidAddress {
        address: redact(address),
        reason: reason.into(),
    }
}

fn percent_decode(address: &str, s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    invalid(address, "expected two hex digits after % in the user info")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(address, "the user info is not UTF-8 once decoded"))
}

/// Checks a namespace: 1 to 64 characters of `[A-Za-z0-9_.-]` (no `:`, so that keys
/// split back unambiguously).
///
/// ```
/// assert!(shm_remote::address::check_namespace("jobs-1.a").is_ok());
/// assert!(shm_remote::address::check_namespace("a:b").is_err());
/// ```
pub fn check_namespace(ns: &str) -> std::result::Result<(), String> {
    if ns.is_empty() || ns.len() > 64 {
        return Err(format!(
            "expected a namespace of 1 to 64 characters, found {} characters",
            ns.len()
        ));
    }
    if let Some(c) = ns
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "expected a namespace of [A-Za-z0-9_.-], found {c:?}"
        ));
    }
    Ok(())
}

impl RedisAddress {
    /// Parses `redis://[user:password@]host[:port][/namespace]` (or `rediss://`). User
    /// and password are percent-decoded.
    ///
    /// ```
    /// let r = shm_remote::address::RedisAddress::parse("redis://127.0.0.1:6380/a")?;
    /// assert_eq!(r.port, 6380);
    /// assert!(shm_remote::address::RedisAddress::parse("http://x").is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn parse(address: &str) -> Result<Self> {
        let (tls, rest) = if let Some(r) = address.strip_prefix("redis://") {
            (false, r)
        } else if let Some(r) = address.strip_prefix("rediss://") {
            (true, r)
        } else {
            return Err(invalid(
                address,
                "expected a URL starting with redis:// or rediss://",
            ));
        };
        if let Some((_, frag)) = rest.split_once('#') {
            // Other clients read `#insecure` as "skip the certificate check": refused
            // here rather than ignored (trust a private CA with SSL_CERT_FILE instead).
            return Err(invalid(
                address,
                format!(
                    "expected no fragment, found #{frag} (certificate checks cannot be turned off: name a private CA with SSL_CERT_FILE)"
                ),
            ));
        }
        if rest.contains('?') {
            return Err(invalid(address, "expected no query string (?...)"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (u, None),
                };
                let user = (!user.is_empty())
                    .then(|| percent_decode(address, user))
                    .transpose()?;
                let pass = pass.map(|p| percent_decode(address, p)).transpose()?;
                (user, pass)
            }
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h
                .split_once(']')
                .ok_or_else(|| invalid(address, "expected ] after an IPv6 host"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| {
                    invalid(address, format!("expected :port after ], found {p:?}"))
                })?),
            };
            (h, port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid(address, "expected a host name, found none"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| {
                invalid(
                    address,
                    format!("expected a port number 1..=65535, found {p:?}"),
                )
            })?,
        };
        let namespace = if path.is_empty() {
            DEFAULT_NAMESPACE.to_owned()
        } else {
            check_namespace(path).map_err(|r| invalid(address, r))?;
            path.to_owned()
        };
        Ok(RedisAddress {
            tls,
            host: host.to_owned(),
            port,
            username,
            password,
            namespace,
        })
    }

    /// `host:port`, for messages (no credentials).
    ///
    /// ```
    /// let r = shm_remote::address::RedisAddress::parse("redis://u:p@h:1/n")?;
    /// assert_eq!(r.server(), "h:1");
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl Address {
    /// Parses an address: a Redis URL, or else a local manager name (1 to 64
    /// characters of `[A-Za-z0-9_-]`, the rule of
    /// [`shm_manager::check_name`]).
    ///
    /// ```
    /// use shm_remote::address::Address;
    /// assert!(matches!(Address::parse("redis://localhost/x")?, Address::Redis(_)));
    /// assert!(Address::parse("not a name").is_err());
    /// # Ok::<(), shm_remote::Error>(())
    /// ```
    pub fn parse(address: &str) -> Result<Self> {
        if address.starts_with("redis://") || address.starts_with("rediss://") {
            return RedisAddress::parse(address).map(Address::Redis);
        }
        if address.contains("://") {
            return Err(invalid(
                address,
                "expected a local manager name or a redis:// or rediss:// URL",
            ));
        }
        shm_manager::check_name(address).map_err(|e| invalid(address, e.to_string()))?;
        Ok(Address::Local(address.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let r = RedisAddress::parse("redis://:pw@h/ns").unwrap();
        assert_eq!((r.username, r.password.as_deref()), (None, Some("pw")));
        let r = RedisAddress::parse("redis://[::1]:7/ns").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 7));
        assert_eq!(r.server(), "[::1]:7");
        assert!(RedisAddress::parse("rediss://h:1/n").unwrap().tls);
        for bad in [
            "redis://",
            "redis://h:0/n",
            "redis://h:70000/n",
            "redis://h:1/a:b",
            "redis://h:1/n?db=1",
            "redis://h/n#insecure",
            "rediss://h/n#insecure",
            "redis://u:p%zz@h/n",
            "redis://[::1/n",
            "ftp://h",
        ] {
            let e = Address::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidAddress { .. }), "{bad}: {e}");
        }
        // The password never shows in errors.
        let e = Address::parse("redis://u:hunter2@h:x/n").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(
            !format!("{:?}", Address::parse("redis://u:hunter2@h/n").unwrap()).contains("hunter2")
        );
    }
}
