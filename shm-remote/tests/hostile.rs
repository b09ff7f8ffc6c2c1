//! Values planted in the server by something else (another client, a hand-typed
//! command): keys of the wrong Redis type, garbage bytes, oversized values, forged
//! type tags. Every one is a typed error naming what was expected and found; none
//! panics.

mod common;

use shm_collections::Limits;
use shm_remote::conn::Retry;
use shm_remote::{Error, RedisManager};

fn raw(m: &RedisManager, cmd: &mut redis::Cmd) {
    let _: redis::Value = m
        .conn()
        .query(cmd, m.conn().timeout(), Retry::Idempotent)
        .unwrap();
}

fn setup(tag: &str) -> (shm_remote::testing::RedisServer, RedisManager) {
    let server = common::server();
    let m = RedisManager::open(&server.url(tag).parse().unwrap(), None).unwrap();
    (server, m)
}

#[test]
fn wrong_redis_type_at_the_data_key() {
    let (_s, m) = setup("wt");
    // Before open: refused at open, naming both types.
    raw(&m, redis::cmd("SET").arg("wt:d:d1").arg("x"));
    let e = shm_remote::ShareableDict::<u8, u8>::open(&m, "d1").unwrap_err();
    assert!(matches!(e, Error::WrongType { .. }), "{e:?}");
    assert!(
        e.to_string().contains("hash") && e.to_string().contains("string"),
        "{e}"
    );
    // After open: every call gets WrongType from the server's WRONGTYPE.
    let d = shm_remote::ShareableDict::<u8, u8>::open(&m, "d2").unwrap();
    let v = shm_remote::ShareableVec::<u8>::open(&m, "v2").unwrap();
    let val = shm_remote::Value::open(&m, "x2", 1u8).unwrap();
    raw(&m, redis::cmd("SET").arg(d.data_key()).arg("x"));
    raw(&m, redis::cmd("SET").arg(v.data_key()).arg("x"));
    raw(&m, redis::cmd("DEL").arg("wt:d:x2"));
    raw(&m, redis::cmd("RPUSH").arg("wt:d:x2").arg("x"));
    for e in [
        d.get(&1).map(|_| ()).unwrap_err(),
        d.insert(1, 1).map(|_| ()).unwrap_err(),
        d.update(1, |_| 1).map(|_| ()).unwrap_err(),
        d.len().map(|_| ()).unwrap_err(),
        d.iter().map(|_| ()).unwrap_err(),
        v.push(1).unwrap_err(),
        v.get(0).map(|_| ()).unwrap_err(),
        v.set(0, 1).map(|_| ()).unwrap_err(),
        v.insert(0, 1).unwrap_err(),
        v.remove(0).map(|_| ()).unwrap_err(),
        val.get().map(|_| ()).unwrap_err(),
        val.update(|x| *x += 1).unwrap_err(),
    ] {
        assert!(matches!(e, Error::WrongType { .. }), "{e:?}");
    }
}

#[test]
fn forged_type_tags() {
    let (_s, m) = setup("ft");
    // Another object's tag.
    raw(
        &m,
        redis::cmd("HSET")
            .arg("ft:m:a")
            .arg("kind")
            .arg("Vec")
            .arg("type")
            .arg("Vec<u8>"),
    );
    let e = shm_remote::ShareableDict::<u8, u8>::open(&m, "a").unwrap_err();
    assert!(
        e.to_string()
            .contains("expected Dict<u8, u8>, found Vec<u8>"),
        "{e}"
    );
    // A tag that is not a hash.
    raw(&m, redis::cmd("SET").arg("ft:m:b").arg("junk"));
    let e = shm_remote::Namespace::open(&m, "b").unwrap_err();
    assert!(
        matches!(e, Error::WrongType { .. }) && e.to_string().contains("string"),
        "{e}"
    );
    // A huge garbage tag is clipped in the message.
    raw(
        &m,
        redis::cmd("HSET")
            .arg("ft:m:c")
            .arg("kind")
            .arg(vec![0xffu8; 100_000]),
    );
    let e = shm_remote::ShareableVec::<u8>::open(&m, "c").unwrap_err();
    assert!(matches!(e, Error::WrongType { .. }));
    assert!(e.to_string().len() < 2000, "{}", e.to_string().len());
}

#[test]
fn garbage_bytes_are_corrupted_errors() {
    let (_s, m) = setup("gb");
    let d = shm_remote::ShareableDict::<String, Vec<u64>>::open(&m, "d").unwrap();
    d.insert("ok".into(), vec![1]).unwrap();
    let mut key = Vec::new();
    shm_collections::codec::encode("bad", &mut key).unwrap();
    // A length prefix claiming 2^60 elements, then nothing: no allocation, an error.
    let bomb = [0xfb, 0, 0, 0, 0, 0, 0, 0, 0x10];
    raw(
        &m,
        redis::cmd("HSET")
            .arg(d.data_key())
            .arg(&key[..])
            .arg(&bomb[..]),
    );
    let e = d.get("bad").unwrap_err();
    assert!(matches!(e, Error::Corrupted { .. }), "{e:?}");
    assert!(e.to_string().contains("Vec<u64>"), "{e}");
    assert!(matches!(d.iter(), Err(Error::Corrupted { .. })));
    assert!(matches!(d.values(), Err(Error::Corrupted { .. })));
    assert!(matches!(
        d.update("bad".into(), |v| v.unwrap_or_default()),
        Err(Error::Corrupted { .. })
    ));
    assert!(matches!(d.remove("bad"), Err(Error::Corrupted { .. })));
    // A key that does not decode.
    raw(
        &m,
        redis::cmd("HSET")
            .arg(d.data_key())
            .arg(&[0xffu8, 0xff][..])
            .arg(&[0u8][..]),
    );
    assert!(matches!(d.keys(), Err(Error::Corrupted { .. })));
    // Unaffected entries still read.
    assert_eq!(d.get("ok").unwrap(), Some(vec![1]));

    let v = shm_remote::ShareableVec::<String>::open(&m, "v").unwrap();
    raw(
        &m,
        redis::cmd("RPUSH")
            .arg(v.data_key())
            .arg(&[0xffu8, 0xfe, 0xfd][..]),
    );
    assert!(matches!(v.get(0), Err(Error::Corrupted { .. })));
    assert!(matches!(v.iter(), Err(Error::Corrupted { .. })));
    assert!(matches!(v.update(0, |s| s), Err(Error::Corrupted { .. })));
    assert!(matches!(v.pop(), Err(Error::Corrupted { .. })));

    let ns = shm_remote::Namespace::open(&m, "ns").unwrap();
    raw(
        &m,
        redis::cmd("HSET")
            .arg("gb:d:ns")
            .arg("a")
            .arg(&[1u8, 2, 3][..]),
    );
    assert!(matches!(ns.get::<u8>("a"), Err(Error::Corrupted { .. })));
    raw(
        &m,
        redis::cmd("HSET")
            .arg("gb:d:ns")
            .arg(&[0xffu8][..])
            .arg(&[0u8][..]),
    );
    assert!(matches!(ns.attrs(), Err(Error::Corrupted { .. })));

    let val = shm_remote::Value::open(&m, "x", String::new()).unwrap();
    raw(&m, redis::cmd("SET").arg("gb:d:x").arg(&[0xfcu8, 1][..]));
    assert!(matches!(val.get(), Err(Error::Corrupted { .. })));
    assert!(matches!(
        val.update(|s| s.len()),
        Err(Error::Corrupted { .. })
    ));
    // Deleted behind the handle's back.
    raw(&m, redis::cmd("DEL").arg("gb:d:x"));
    assert!(matches!(val.get(), Err(Error::NotFound { .. })));
}

#[test]
fn oversized_values_are_too_large() {
    let (_s, m) = setup("big");
    let limits = Limits {
        max_key: 64,
        max_value: 1024,
    };
    let d = shm_remote::ShareableDict::<u8, Vec<u8>>::open_with(&m, "d", limits).unwrap();
    let mut key = Vec::new();
    shm_collections::codec::encode(&1u8, &mut key).unwrap();
    raw(
        &m,
        redis::cmd("HSET")
            .arg(d.data_key())
            .arg(&key[..])
            .arg(vec![0u8; 4096]),
    );
    match d.get(&1).unwrap_err() {
        Error::TooLarge {
            what, len, limit, ..
        } => assert_eq!((what, len, limit), ("value", 4096, 1024)),
        e => panic!("expected TooLarge, found {e:?}"),
    }
    // Writes over the limit are refused before anything is sent.
    assert!(matches!(
        d.insert(2, vec![0; 2000]),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(d.len().unwrap(), 1);
    let v = shm_remote::ShareableVec::<Vec<u8>>::open_with(&m, "v", limits).unwrap();
    raw(
        &m,
        redis::cmd("RPUSH").arg(v.data_key()).arg(vec![7u8; 5000]),
    );
    assert!(matches!(v.get(0), Err(Error::TooLarge { .. })));
    assert!(matches!(v.iter(), Err(Error::TooLarge { .. })));
    // The default limit (64 MiB) on a planted value of 65 MiB.
    let big = shm_remote::Value::open(&m, "huge", vec![0u8]).unwrap();
    raw(
        &m,
        redis::cmd("SET")
            .arg("big:d:huge")
            .arg(vec![1u8; (64 << 20) + 1]),
    );
    assert!(matches!(big.get(), Err(Error::TooLarge { len, .. }) if len == (64 << 20) + 1));
}
