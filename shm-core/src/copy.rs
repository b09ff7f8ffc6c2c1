//! Racing copies: the one way this workspace copies bytes in and out of a mapping that
//! another process may write at the same time.
//!
//! A plain `ptr::copy_nonoverlapping` over such bytes is a data race, hence undefined
//! behaviour in Rust's memory model, even though the hardware copies them just fine.
//! These functions copy the shared side with *relaxed atomic* accesses instead, as the
//! [`atomic-memcpy`](https://crates.io/crates/atomic-memcpy) crate does: the unaligned
//! head and tail byte by byte as [`AtomicU8`], the aligned middle word by word as
//! [`AtomicUsize`]. A concurrent writer then gives *some* mix of old and new bytes
//! (each word or byte whole), never undefined behaviour; the layers above validate what
//! they read (a seqlock, a checksum, a published length) and retry or reject.
//!
//! Relaxed atomic loads and stores of a word compile to plain moves on x86_64 and
//! aarch64, so the only cost against `memcpy` is that the compiler does not merge them
//! into vector moves; large copies are bound by memory bandwidth either way (measured in
//! `shm-bench`: `core/bulk_write_64m`, `core/bulk_read_64m` against `core/memcpy_64m`).
//! The private side (a `&[u8]` / `&mut [u8]` of this process) is accessed normally.
//!
//! One exception keeps 16-byte values whole: on x86_64 a copy of exactly 16 bytes that
//! stays inside one cache line is made with a single 16-byte vector move (`movdqu`, in
//! an `asm!` block the compiler treats as opaque). That is how glibc's `memcpy`, and so
//! CPython, copies 16 bytes, and current x86_64 processors carry such a move out as one
//! access: a reader racing a writer of a 16-byte slot (a `ShareableList` string of up to
//! 16 bytes, say) sees the old or the new value, never half of each. Longer copies can
//! tear between words, as they can in CPython.
//!
//! The atomic-memcpy crate itself is not used: its API copies one value of a type
//! known at compile time, and these copies have a length known only at run time.

use std::mem::size_of;
use std::sync::atomic::{
    AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed,
};

const WORD: usize = size_of::<usize>();

/// Bytes to skip from `addr` to the next word-aligned address.
/// One 16-byte move, when the copy is exactly 16 bytes inside one cache line.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn whole16(shared: *const u8, len: usize) -> bool {
    len == 16 && (shared as usize) % 64 <= 48
}

/// Loads 16 bytes with one instruction.
///
/// # Safety
/// `src..src + 16` is valid for reads.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load16(src: *const u8) -> [u8; 16] {
    let v: std::arch::x86_64::__m128i;
    // SAFETY: the caller guarantees 16 readable bytes; movdqu has no alignment need;
    // SSE2 is part of the x86_64 baseline.
    unsafe {
        std::arch::asm!(
            "movdqu {v}, xmmword ptr [{p}]",
            p = in(reg) src,
            v = out(xmm_reg) v,
            options(nostack, preserves_flags, readonly)
        );
        std::mem::transmute::<std::arch::x86_64::__m128i, [u8; 16]>(v)
    }
}

/// Stores 16 bytes with one instruction.
///
/// # Safety
/// `dst..dst + 16` is valid for writes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store16(dst: *mut u8, bytes: [u8; 16]) {
    // SAFETY: plain data of the same size.
    let v = unsafe { std::mem::transmute::<[u8; 16], std::arch::x86_64::__m128i>(bytes) };
    // SAFETY: the caller guarantees 16 writable bytes; movdqu has no alignment need.
    unsafe {
        std::arch::asm!(
            "movdqu xmmword ptr [{p}], {v}",
            p = in(reg) dst,
            v = in(xmm_reg) v,
            options(nostack, preserves_flags)
        );
    }
}

/// One naturally aligned access of `len` bytes (1, 2, 4 or 8) at `addr`, if it is one:
/// the common small copies (a length word, a format code) then cost one move.
#[inline(always)]
fn single_word(addr: usize, len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && addr % len == 0
}

#[inline(always)]
fn head_len(addr: *const u8, len: usize) -> usize {
    addr.align_offset(WORD).min(len)
}

/// Copies `dst.len()` bytes from `src`, memory that other threads or processes may
/// write concurrently, into `dst`, with relaxed atomic loads (see the
/// [crate docs](crate#soundness-of-racing-copies)).
///
/// # Safety
///
/// - `src` is valid for reads of `dst.len()` bytes for the whole call (a live mapping
///   of at least that length), and those bytes are only ever accessed by others through
///   atomic operations, these functions, or from another process.
/// - `src..src + dst.len()` does not overlap `dst` (it cannot when `dst` is a Rust
///   reference to memory outside the shared mapping).
///
/// ```
/// let seg = shm_core::Segment::anonymous(16)?;
/// seg.write_at(3, b"racy")?;
/// let mut buf = [0u8; 4];
/// // SAFETY: bytes 3..7 lie inside the live mapping of `seg`; `buf` is a local array.
/// unsafe { shm_core::copy_from_shared(seg.as_ptr().add(3), &mut buf) };
/// assert_eq!(&buf, b"racy");
/// # Ok::<(), shm_core::Error>(())
/// ```
#[inline]
pub unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    if single_word(src as usize, len) {
        // SAFETY: `src` is aligned for the atomic of `len` bytes (checked) and valid for
        // `len` reads (the caller's contract).
        unsafe {
            match len {
                1 => dst[0] = (*src.cast::<AtomicU8>()).load(Relaxed),
                2 => dst.copy_from_slice(&(*src.cast::<AtomicU16>()).load(Relaxed).to_ne_bytes()),
                4 => dst.copy_from_slice(&(*src.cast::<AtomicU32>()).load(Relaxed).to_ne_bytes()),
                _ => dst.copy_from_slice(&(*src.cast::<AtomicU64>()).load(Relaxed).to_ne_bytes()),
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if whole16(src, len) {
        // SAFETY: `src..src + 16` is readable (the caller's contract, len == 16).
        dst.copy_from_slice(&unsafe { load16(src) });
        return;
    }
    let d = dst.as_mut_ptr();
    let head = head_len(src, len);
    let words = (len - head) / WORD;
    let tail_start = head + words * WORD;
    // SAFETY: (this and the next two blocks) every offset is `< len`, inside both
    // `src..src + len` (valid for reads, by the caller) and `dst`; `src + head` is
    // word-aligned, so the `AtomicUsize` views are aligned; atomic types have the
    // size and alignment of their integers and may alias bytes written by others.
    unsafe {
        for i in 0..head {
            *d.add(i) = (*src.add(i).cast::<AtomicU8>()).load(Relaxed);
        }
    }
    // SAFETY: see above.
    unsafe {
        let s = src.add(head).cast::<AtomicUsize>();
        let d = d.add(head).cast::<usize>();
        for i in 0..words {
            d.add(i).write_unaligned((*s.add(i)).load(Relaxed));
        }
    }
    // SAFETY: see above.
    unsafe {
        for i in tail_start..len {
            *d.add(i) = (*src.add(i).cast::<AtomicU8>()).load(Relaxed);
        }
    }
}

/// Copies `src` into `dst`, memory that other threads or processes may read or write
/// concurrently, with relaxed atomic stores (see the
/// [crate docs](crate#soundness-of-racing-copies)).
///
/// # Safety
///
/// - `dst` is valid for writes of `src.len()` bytes for the whole call (a live,
///   writable mapping of at least that length), and those bytes are only ever accessed
///   by others through atomic operations, these functions, or from another process.
/// - `dst..dst + src.len()` does not overlap `src`.
///
/// ```
/// let seg = shm_core::Segment::anonymous(16)?;
/// // SAFETY: bytes 5..10 lie inside the live mapping of `seg`; the source is a literal.
/// unsafe { shm_core::copy_to_shared(b"atoms", seg.as_ptr().add(5)) };
/// let mut buf = [0u8; 5];
/// seg.read_at(5, &mut buf)?;
/// assert_eq!(&buf, b"atoms");
/// # Ok::<(), shm_core::Error>(())
/// ```
#[inline]
pub unsafe fn copy_to_shared(src: &[u8], dst: *mut u8) {
    let len = src.len();
    if single_word(dst as usize, len) {
        // SAFETY: `dst` is aligned for the atomic of `len` bytes (checked) and valid for
        // `len` writes (the caller's contract); `src` has exactly `len` bytes.
        unsafe {
            match len {
                1 => (*dst.cast::<AtomicU8>()).store(src[0], Relaxed),
                2 => {
                    (*dst.cast::<AtomicU16>()).store(u16::from_ne_bytes([src[0], src[1]]), Relaxed)
                }
                4 => (*dst.cast::<AtomicU32>()).store(
                    u32::from_ne_bytes([src[0], src[1], src[2], src[3]]),
                    Relaxed,
                ),
                _ => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(src);
                    (*dst.cast::<AtomicU64>()).store(u64::from_ne_bytes(b), Relaxed)
                }
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Ok(bytes) = <[u8; 16]>::try_from(src) {
        if whole16(dst, len) {
            // SAFETY: `dst..dst + 16` is writable (the caller's contract, len == 16).
            unsafe { store16(dst, bytes) };
            return;
        }
    }
    let s = src.as_ptr();
    let head = head_len(dst, len);
    let words = (len - head) / WORD;
    let tail_start = head + words * WORD;
    // SAFETY: (this and the next two blocks) every offset is `< len`, inside both `src`
    // and `dst..dst + len` (valid for writes, by the caller); `dst + head` is
    // word-aligned, so the `AtomicUsize` views are aligned; atomic types have the
    // size and alignment of their integers and may alias bytes accessed by others.
    unsafe {
        for i in 0..head {
            (*dst.add(i).cast::<AtomicU8>()).store(*s.add(i), Relaxed);
        }
    }
    // SAFETY: see above.
    unsafe {
        let s = s.add(head).cast::<usize>();
        let d = dst.add(head).cast::<AtomicUsize>();
        for i in 0..words {
            (*d.add(i)).store(s.add(i).read_unaligned(), Relaxed);
        }
    }
    // SAFETY: see above.
    unsafe {
        for i in tail_start..len {
            (*dst.add(i).cast::<AtomicU8>()).store(*s.add(i), Relaxed);
        }
    }
}

/// Sets `len` bytes at `dst`, memory that other threads or processes may read or write
/// concurrently, to `byte`, with relaxed atomic stores (a racing `memset`).
///
/// # Safety
///
/// - `dst` is valid for writes of `len` bytes for the whole call (a live, writable
///   mapping of at least that length), and those bytes are only ever accessed by
///   others through atomic operations, these functions, or from another process.
///
/// ```
/// let seg = shm_core::Segment::anonymous(16)?;
/// // SAFETY: bytes 1..15 lie inside the live mapping of `seg`.
/// unsafe { shm_core::fill_shared(seg.as_ptr().add(1), 14, 0xab) };
/// let mut buf = [0u8; 16];
/// seg.read_at(0, &mut buf)?;
/// assert_eq!((buf[0], buf[1], buf[14], buf[15]), (0, 0xab, 0xab, 0));
/// # Ok::<(), shm_core::Error>(())
/// ```
#[inline]
pub unsafe fn fill_shared(dst: *mut u8, len: usize, byte: u8) {
    let head = head_len(dst, len);
    let words = (len - head) / WORD;
    let tail_start = head + words * WORD;
    let word = usize::from_ne_bytes([byte; WORD]);
    // SAFETY: (this and the next two blocks) every offset is `< len`, inside
    // `dst..dst + len` (valid for writes, by the caller); `dst + head` is word-aligned.
    unsafe {
        for i in 0..head {
            (*dst.add(i).cast::<AtomicU8>()).store(byte, Relaxed);
        }
    }
    // SAFETY: see above.
    unsafe {
        let d = dst.add(head).cast::<AtomicUsize>();
        for i in 0..words {
            (*d.add(i)).store(word, Relaxed);
        }
    }
    // SAFETY: see above.
    unsafe {
        for i in tail_start..len {
            (*dst.add(i).cast::<AtomicU8>()).store(byte, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every head/middle/tail split, against `copy_from_slice` as the model.
    #[test]
    fn matches_plain_copies_at_every_alignment() {
        let pattern: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in 0..WORD * 2 {
            for len in 0..(WORD * 5 + 3) {
                let src = &pattern[..len];
                let mut shared = vec![0u8; WORD * 8];
                // SAFETY: `offset + len` stays inside `shared`; nothing else accesses it.
                unsafe { copy_to_shared(src, shared.as_mut_ptr().add(offset)) };
                assert_eq!(&shared[offset..offset + len], src, "to {offset}+{len}");
                assert!(shared[..offset].iter().all(|&b| b == 0));
                assert!(shared[offset + len..].iter().all(|&b| b == 0));

                let mut out = vec![0u8; len];
                // SAFETY: as above, read only.
                unsafe { copy_from_shared(shared.as_ptr().add(offset), &mut out) };
                assert_eq!(out, src, "from {offset}+{len}");

                // SAFETY: as above.
                unsafe { fill_shared(shared.as_mut_ptr().add(offset), len, 0xee) };
                assert!(shared[offset..offset + len].iter().all(|&b| b == 0xee));
                assert!(shared[offset + len..].iter().all(|&b| b == 0));
            }
        }
    }
}
