//! `rediss://`: a TLS-only server with a throwaway CA. The client checks the server's
//! certificate (the CA comes from `SSL_CERT_FILE`, set for a child process): with the
//! CA it works end to end; without it the connection is refused with a typed error.

mod common;

use shm_remote::prelude::*;
use shm_remote::testing::{RedisServer, ServerOptions};
use shm_remote::{Error, Manager};

#[test]
fn tls_child() {
    let Some(role) = common::role() else { return };
    let address = std::env::var("TLS_ADDRESS").unwrap();
    match role.as_str() {
        "trusting" => {
            let m = Manager::connect(&address).unwrap();
            let d = m.dict::<String, u64>("d").unwrap();
            d.update("n".into(), |v| v.unwrap_or(0) + 1).unwrap();
            assert_eq!(d.get("n").unwrap(), Some(1));
            println!("TLS-OK");
        }
        _ => {
            let e = Manager::connect(&address).unwrap_err();
            // A certificate nobody vouches for: no connection, a typed error.
            assert!(
                matches!(
                    e,
                    Error::Disconnected { .. }
                        | Error::Server { .. }
                        | Error::InvalidAddress { .. }
                ),
                "{e:?}"
            );
            println!("TLS-REFUSED {e}");
        }
    }
}

#[test]
fn rediss_checks_the_certificate() {
    if common::role().is_some() {
        return;
    }
    let server = RedisServer::start_with(ServerOptions {
        tls: true,
        ..Default::default()
    })
    .expect("redis-server (built with TLS) and openssl must be installed: the tests fail rather than skip");
    let url = server.url("tls");
    assert!(url.starts_with("rediss://"));
    let run = |role: &str, ca: Option<&std::path::Path>| {
        let mut c = common::child("tls_child", role, &[("TLS_ADDRESS", url.clone())]);
        match ca {
            Some(p) => c.env("SSL_CERT_FILE", p),
            // The system's roots only: they do not vouch for the throwaway CA.
            None => c.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR"),
        };
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{role}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    assert!(run("trusting", Some(&server.ca_file())).contains("TLS-OK"));
    let refused = run("untrusting", None);
    assert!(refused.contains("TLS-REFUSED"), "{refused}");
    eprintln!("{refused}");
}
