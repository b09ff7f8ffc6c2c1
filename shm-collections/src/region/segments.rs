//! Data segments: making one complete before it gets its name, proving that a segment
//! is this incarnation's before removing it, mapping the current one, and creating a
//! whole collection crash-atomically.

use std::mem::offset_of;
use std::sync::atomic::Ordering;

use shm_core::{Object, ObjectSpec, Segment, SegmentOptions};

use super::Limits;
use super::error::{RegionError, RegionResult};
use super::layout::{
    CtrlHeader, DATA_HDR, DataHeader, FIRST_REC, MAX_CAP, MAX_SLOTS, Mapped, ctrl_header, data_spec,
};
use super::names::{ctrl_name, data_segment_name};

/// Generation numbers a growth may skip when the next one's name is taken by a
/// segment that is not provably this object's (a writer killed while creating it).
pub(super) const SKIP_GENERATIONS: u64 = 8;

/// The name of the current data segment of the growable collection whose control
/// object is named `control` (for tools and tests: it reads the control object's
/// incarnation and generation without checking its kind).
///
/// ```
/// let d = shm_collections::ShareableDict::<u8, u8>::create()?;
/// let data = shm_collections::region::current_data_segment(d.name().unwrap())?;
/// assert!(shm_core::Segment::open(&data).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn current_data_segment(control: &str) -> RegionResult<String> {
    let seg = Segment::open(control)?;
    let mut w = [0u8; 8];
    seg.read_at(
        shm_core::HEADER_LEN + offset_of!(CtrlHeader, incarnation),
        &mut w,
    )?;
    let inc = u64::from_ne_bytes(w);
    let generation = Object::inspect(control)?.generation;
    Ok(data_segment_name(
        shm_core::normalize_name(control)?,
        inc,
        generation,
    ))
}

/// A fresh incarnation id (never 0, which a zeroed control payload would say).
pub(super) fn new_incarnation(label: &str) -> RegionResult<u64> {
    loop {
        let mut b = [0u8; 8];
        let mut filled = 0;
        while filled < 8 {
            match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
                Ok(n) => filled += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(RegionError::Shm(shm_core::Error::Os {
                        op: "getrandom",
                        name: label.to_owned(),
                        source: e.into(),
                    }));
                }
            }
        }
        let v = u64::from_ne_bytes(b);
        if v != 0 {
            return Ok(v);
        }
    }
}

/// Whether the data segment `name` is provably this incarnation's: a checked object
/// of the data kind and type whose header names incarnation `inc` and a generation
/// that `which` accepts. Anything else (a user's object, another incarnation's
/// segment, garbage, a half-made segment) is not.
pub(super) fn is_own(name: &str, spec: &ObjectSpec, inc: u64, which: impl Fn(u64) -> bool) -> bool {
    let Ok(obj) = Segment::open(name).and_then(|s| Object::from_segment(s, spec)) else {
        return false;
    };
    if obj.payload_len() < DATA_HDR {
        return false;
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        obj.read_at(at, &mut b).map(|()| u64::from_ne_bytes(b))
    };
    matches!((
        word(offset_of!(DataHeader, incarnation)),
        word(offset_of!(DataHeader, generation))
    ), (Ok(i), Ok(g)) if i == inc && which(g))
}

/// Unlinks the data segment `name` if it is provably this incarnation's (see
/// [`is_own`]); nothing else is ever unlinked.
pub(super) fn unlink_own(
    name: &str,
    spec: &ObjectSpec,
    inc: u64,
    which: impl Fn(u64) -> bool,
) -> bool {
    is_own(name, spec, inc, which) && shm_core::unlink(name).is_ok()
}

/// Creates the object fully (header published, `init` run) in an unnamed file in
/// `/dev/shm` (`O_TMPFILE`) and only then gives it `name` (`linkat`, which never
/// replaces a name: `AlreadyExists` if it is taken). So a writer killed at any point
/// leaves either nothing or a whole segment whose header proves whose it is.
/// `None` when the system cannot (no `O_TMPFILE` on `/dev/shm`, no `/proc`).
pub(super) fn create_linked(
    name: &str,
    spec: &ObjectSpec,
    payload: usize,
    init: impl Fn(&Object) -> shm_core::Result<()>,
) -> Option<shm_core::Result<Object>> {
    use rustix::fs::{AtFlags, CWD, FallocateFlags, Mode, OFlags};
    use rustix::io::Errno;
    use std::os::fd::AsRawFd;
    let os = |op: &'static str, e: Errno| shm_core::Error::Os {
        op,
        name: name.to_owned(),
        source: e.into(),
    };
    let fd = rustix::fs::openat(
        CWD,
        "/dev/shm",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .ok()?;
    let Some(total) = shm_core::HEADER_LEN.checked_add(payload) else {
        return Some(Err(shm_core::Error::InvalidSize {
            name: name.to_owned(),
            len: payload as u64,
            reason: "payload too large",
        }));
    };
    if let Err(e) = rustix::fs::ftruncate(&fd, total as u64) {
        return Some(Err(os("ftruncate", e)));
    }
    // Pages reserved now: a full /dev/shm fails here, not with SIGBUS later.
    match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, total as u64) {
        Ok(()) | Err(Errno::OPNOTSUPP) => {}
        Err(e) => return Some(Err(os("fallocate", e))),
    }
    let from = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let made = Segment::from_fd(fd).and_then(|seg| Object::init_in(seg, spec, |o| init(o)));
    let made = match made {
        Ok(o) => o,
        Err(e) => return Some(Err(e)),
    };
    match rustix::fs::linkat(
        CWD,
        from.as_str(),
        CWD,
        format!("/dev/shm/{name}").as_str(),
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            return Some(Err(shm_core::Error::AlreadyExists {
                name: name.to_owned(),
            }));
        }
        Err(_) => return None,
    }
    // Map it again by name (a handle keeps no descriptor per data segment); a name
    // replaced in between is caught by the caller's checks.
    drop(made);
    Some(Segment::open(name).and_then(|s| Object::from_segment(s, spec)))
}

/// Creates the growable collection `T` (a dict, vec or namespace) under `name`
/// crash-atomically: its control object is built complete in an unnamed file in
/// `/dev/shm` (`O_TMPFILE`), with its first data segment created (complete, linked)
/// under its derived name and `before_link` run on the published control object, and
/// only then linked to `name` (`linkat`, which never replaces a name:
/// `AlreadyExists` if it is taken, after removing the data segment it made). So
/// `name` only ever names a complete, initialised object whose header names its
/// creator; a creator killed before the link leaves at most a data segment whose
/// control object never appeared (an orphan: `shm gc` removes it). Where the system
/// has no `O_TMPFILE` (or no `/proc`) it creates in place, as `create_with` does.
/// The handle never unlinks on drop.
///
/// ```
/// use shm_collections::{Limits, ShareableDict, region::create_collection_linked};
/// let name = format!("shm-doc-linked-{}", std::process::id());
/// let d: ShareableDict<String, u32> = create_collection_linked(&name, Limits::default(), |_| {})?;
/// d.insert("a".into(), 1)?;
/// assert!(create_collection_linked::<ShareableDict<String, u32>>(&name, Limits::default(), |_| {}).is_err());
/// d.unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_collection_linked<T>(
    name: &str,
    limits: Limits,
    before_link: impl FnOnce(&Object),
) -> RegionResult<T>
where
    T: shm_core::SharedObject<Init = Limits, Error = RegionError>,
{
    use rustix::fs::{AtFlags, CWD, FallocateFlags, Mode, OFlags};
    use rustix::io::Errno;
    use std::os::fd::AsRawFd;
    let in_place = |before_link: Box<dyn FnOnce(&Object) + '_>| -> RegionResult<T> {
        let opts = SegmentOptions::new().name(name).unlink_on_drop(false);
        let t = T::create_with(&opts, limits)?;
        before_link(t.object());
        Ok(t)
    };
    let shm_core::Layout::Header(spec) = T::layout() else {
        return in_place(Box::new(before_link));
    };
    let os = |op: &'static str, e: Errno| -> RegionError {
        shm_core::Error::Os {
            op,
            name: name.to_owned(),
            source: e.into(),
        }
        .into()
    };
    let Ok(fd) = rustix::fs::openat(
        CWD,
        "/dev/shm",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    ) else {
        return in_place(Box::new(before_link));
    };
    let total = shm_core::HEADER_LEN
        .checked_add(T::payload_len(&limits)?)
        .ok_or_else(|| shm_core::Error::InvalidSize {
            name: name.to_owned(),
            len: u64::MAX,
            reason: "payload too large",
        })?;
    rustix::fs::ftruncate(&fd, total as u64).map_err(|e| os("ftruncate", e))?;
    // Pages reserved now: a full /dev/shm fails here, not with SIGBUS later.
    match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, total as u64) {
        Ok(()) | Err(Errno::OPNOTSUPP) => {}
        Err(e) => return Err(os("fallocate", e)),
    }
    let from = format!("/proc/self/fd/{}", fd.as_raw_fd());
    if rustix::fs::access(from.as_str(), rustix::fs::Access::EXISTS).is_err() {
        return in_place(Box::new(before_link));
    }
    // The segment carries its future name, from which the data segments' names derive.
    let seg = Segment::from_fd_named(fd, name)?;
    let ctrl = Object::init_in(seg, &spec, |o| T::init_payload(o, limits))?;
    before_link(&ctrl);
    // What to remove if the name cannot be ours: the data segment made above.
    let inc = ctrl_header(&ctrl).incarnation.load(Ordering::Relaxed);
    let generation = ctrl.generation().map_or(0, |g| g.load(Ordering::Acquire));
    let drop_data = || {
        let data = data_segment_name(name, inc, generation);
        unlink_own(&data, &data_spec(&spec), inc, |g| g == generation);
    };
    match rustix::fs::linkat(
        CWD,
        from.as_str(),
        CWD,
        format!("/dev/shm/{name}").as_str(),
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Ok(()) => T::attach(ctrl),
        Err(Errno::EXIST) => {
            drop_data();
            Err(shm_core::Error::AlreadyExists {
                name: name.to_owned(),
            }
            .into())
        }
        Err(e) => {
            drop_data();
            Err(os("linkat", e))
        }
    }
}

/// Creates a data segment with the given geometry for a generation after
/// `published` (the generation the control object names; `None` at create): the
/// first of `published + 1 ..` whose name is free. A name taken by this incarnation's
/// own unpublished leftover (a writer that died mid-growth) is reused; a name taken by
/// anything else is skipped, never removed, and after [`SKIP_GENERATIONS`] taken names
/// the growth fails with [`RegionError::NameTaken`].
pub(super) fn create_data(
    ctrl: &Object,
    inc: u64,
    spec: &ObjectSpec,
    published: Option<u64>,
    slots: usize,
    cap: u64,
) -> RegionResult<Mapped> {
    let base = ctrl_name(ctrl)?;
    let payload = (DATA_HDR as u64)
        .checked_add(slots as u64 * 8)
        .and_then(|n| n.checked_add(cap))
        .filter(|_| cap <= MAX_CAP && (slots as u64) <= MAX_SLOTS)
        .ok_or_else(|| RegionError::Corrupted {
            name: ctrl.label(),
            what: format!("a data segment of {slots} slots and {cap} bytes is too large"),
        })?;
    let first = match published {
        None => 0,
        Some(g) => g.checked_add(1).ok_or_else(|| RegionError::Corrupted {
            name: ctrl.label(),
            what: format!("generation {g} cannot grow further"),
        })?,
    };
    let mut taken = Vec::new();
    for generation in (first..).take(SKIP_GENERATIONS as usize) {
        let name = data_segment_name(base, inc, generation);
        let init = |o: &Object| {
            let w = |at: usize, v: u64| o.write_at(at, &v.to_ne_bytes());
            w(offset_of!(DataHeader, generation), generation)?;
            w(offset_of!(DataHeader, incarnation), inc)?;
            w(offset_of!(DataHeader, slots), slots as u64)?;
            w(offset_of!(DataHeader, cap), cap)?;
            w(offset_of!(DataHeader, used), FIRST_REC)
        };
        let make = || match create_linked(&name, spec, payload as usize, init) {
            Some(made) => made,
            // No O_TMPFILE or no /proc: create in place (O_EXCL). A writer killed
            // during that create leaves a half-made segment that is not provably ours.
            None => {
                let opts = SegmentOptions::new().name(&name).unlink_on_drop(false);
                Object::create(&opts, spec, payload as usize, init)
            }
        };
        let obj = match make() {
            Err(shm_core::Error::AlreadyExists { .. }) => {
                // Ours and unpublished (a writer of this object died mid-growth): remove
                // and make it again. Anything else keeps its name.
                let leftover = |g: u64| g == generation && published.is_some_and(|p| g > p);
                if unlink_own(&name, spec, inc, leftover) {
                    make()?
                } else {
                    taken.push(name);
                    continue;
                }
            }
            other => other?,
        };
        return Mapped::check(obj, generation, inc, &ctrl.label());
    }
    Err(RegionError::NameTaken {
        name: ctrl.label(),
        segments: taken,
    })
}

/// Maps the data segment the control object names now (retrying when a writer
/// published over it between the load of the generation and the open).
pub(super) fn map_current(
    ctrl: &Object,
    inc: u64,
    spec: &ObjectSpec,
    label: &str,
) -> RegionResult<Mapped> {
    let gen_word = ctrl
        .generation()
        .expect("a control object always has a header");
    let mut last = None;
    for _ in 0..100 {
        let generation = gen_word.load(Ordering::Acquire);
        let name = data_segment_name(ctrl_name(ctrl)?, inc, generation);
        let opened = Segment::open(&name).and_then(|s| Object::from_segment(s, spec));
        match opened {
            Ok(obj) => return Mapped::check(obj, generation, inc, label),
            // Published over and unlinked between our load and open: load again.
            Err(e @ shm_core::Error::NotFound { .. })
                if gen_word.load(Ordering::Acquire) != generation =>
            {
                last = Some(e)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(
        || RegionError::Corrupted {
            name: label.to_owned(),
            what: "the generation never settled".into(),
        },
        RegionError::from,
    ))
}
