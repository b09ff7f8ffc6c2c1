//! Racing copies: the one way this workspace copies bytes in and out of a mapping that
//! another process may write at the same time.
//!
//! A plain `ptr::copy_nonoverlapping` over such bytes is a data race, hence undefined
//! behaviour in Rust's memory model, even though the hardware copies them just fine.
//! These functions copy the shared side with *relaxed atomic* accesses instead, as the
//! [`atomic-memcpy`](https://crates.io/crates/atomic-memcpy) crate does: the unaligned
//! head and tail byte by byte as [`AtomicU8`], the aligned middle word by word as
//! [`AtomicUsize`] (or, for long copies on x86_64, 16 bytes at a time: below). A concurrent writer then gives *some* mix of old and new bytes
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
//! 16 bytes, say) sees the old or the new value, never half of each.
//!
//! ## Vector copies of long ranges (x86_64)
//!
//! The word loop moves 8 bytes per instruction, about half of `memcpy`'s speed on
//! ranges that fit in the cache (a 4 KiB queue message). So on x86_64 a copy of at
//! least `VECTOR_MIN` (96) bytes, on a processor that reports AVX, copies the shared
//! side in three parts: the bytes up to the first 16-byte aligned address with the word
//! path above, then whole aligned 16-byte chunks with one `movdqa` (or `vmovdqa` with a
//! 16-byte register) each, four per loop iteration (a cache line), then the rest (under
//! 16 bytes) with the word path again. The private side may be unaligned and is
//! accessed with `movdqu`; when reading, two chunks are joined in a 32-byte register
//! and stored to the private side with one 32-byte `vmovdqu`, since stores bound these
//! copies. The vector moves are in `asm!` blocks, opaque to the compiler like the
//! 16-byte move above: it can neither split, merge nor reorder them, so each is one
//! instruction accessing the shared bytes, which is what another process sees.
//!
//! What stays whole: Intel (SDM vol. 3A, "Guaranteed Atomic Operations") and AMD (APM
//! vol. 2, "Access Atomicity") both document that on processors that report AVX
//! (CPUID.01H:ECX bit 28), a 16-byte aligned `movdqa` / `vmovdqa` (128-bit form) load or
//! store of cacheable memory is carried out as one atomic access. Hence the vector path
//! runs only when AVX is reported (`is_x86_feature_detected!("avx")`, cached by `std`);
//! without it the word path runs. So a racing reader or writer still finds every
//! aligned 8-byte word of the shared side read or written whole, and in addition, in a
//! vector copy, every aligned 16-byte chunk that lies entirely inside the copied range.
//! Nothing larger is whole: a copy of more than 16 bytes can tear between words or
//! chunks, as it can in CPython.
//!
//! Not used, on purpose: 32-byte (AVX2) moves of the shared side, although they copy
//! 4 KiB in and out about as fast as `memcpy` where 16-byte moves take about 1.5 times
//! as long (`shm-bench`: `core/shared_copy_4k_in_out` against `core/memcpy_4k_in_out`):
//! neither vendor documents any atomicity for a 32-byte access, not even of its aligned
//! words. Nor `rep movsb`: fast string operations promise no atomicity per element.
//!
//! The atomic-memcpy crate itself is not used: its API copies one value of a type
//! known at compile time, and these copies have a length known only at run time.

use std::mem::size_of;
use std::sync::atomic::{
    AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed,
};

const WORD: usize = size_of::<usize>();

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

/// Bytes to skip from `addr` to the next word-aligned address.
#[inline(always)]
fn head_len(addr: *const u8, len: usize) -> usize {
    addr.align_offset(WORD).min(len)
}

/// The shortest copy that takes the vector path (x86_64 with AVX). Measured with a copy
/// in and out (`shm-bench`, word-aligned shared side): 16-byte moves cost 1.4 times the
/// word loop at 64 bytes and 0.7 times at 96 bytes, as the ends are copied apart.
#[cfg(target_arch = "x86_64")]
const VECTOR_MIN: usize = 96;

// The vector path splits a copy at the first 16-byte aligned address, under 16 bytes in.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(VECTOR_MIN >= 16);

/// Whether this processor documents aligned 16-byte vector accesses as atomic: Intel
/// and AMD do for every processor that reports AVX (see the module docs).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn vector_whole16() -> bool {
    // `std` caches the CPUID result: this is one load and a bit test.
    std::arch::is_x86_feature_detected!("avx")
}

/// Bytes from `addr` to the next 16-byte aligned address (0..16).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn to_align16(addr: *const u8) -> usize {
    (addr as usize).wrapping_neg() % 16
}

/// Copies `chunks` 16-byte chunks from shared `src` to private `dst`, each chunk with
/// one aligned 16-byte `vmovdqa` load, a cache line per loop iteration. Two chunks
/// are joined in a 32-byte register and stored with one `vmovdqu` to the private side:
/// a 16-byte store per cycle is what bounds these copies, and the private side needs
/// no atomicity.
///
/// # Safety
/// `src` is 16-byte aligned and valid for reads of `chunks * 16` bytes; `dst` is valid
/// for writes of as many bytes and does not overlap them; the processor has AVX.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn chunks_from(src: *const u8, dst: *mut u8, chunks: usize) {
    let lines = chunks / 4;
    if lines > 0 {
        // SAFETY: the loop runs `lines` times over bytes `0..lines * 64 <= chunks * 16`
        // of both ranges, and `src` is 16-byte aligned as `vmovdqa` needs (the caller's
        // contract); `vmovdqu` has no alignment need; AVX (`vmovdqa`, `vinsertf128`) is
        // present (the caller's contract). `vzeroupper` avoids the penalty of later SSE
        // code on some Intel cores; `clobber_abi("C")` tells the compiler that every
        // vector register (their upper halves too) is overwritten.
        unsafe {
            std::arch::asm!(
                "2:",
                "vmovdqa xmm0, xmmword ptr [rsi]",
                "vmovdqa xmm1, xmmword ptr [rsi + 16]",
                "vmovdqa xmm2, xmmword ptr [rsi + 32]",
                "vmovdqa xmm3, xmmword ptr [rsi + 48]",
                "vinsertf128 ymm0, ymm0, xmm1, 1",
                "vinsertf128 ymm2, ymm2, xmm3, 1",
                "vmovdqu ymmword ptr [rdi], ymm0",
                "vmovdqu ymmword ptr [rdi + 32], ymm2",
                "add rsi, 64",
                "add rdi, 64",
                "dec rcx",
                "jnz 2b",
                "vzeroupper",
                inout("rsi") src => _,
                inout("rdi") dst => _,
                inout("rcx") lines => _,
                clobber_abi("C"),
                options(nostack)
            );
        }
    }
    for i in lines * 4..chunks {
        // SAFETY: the 16 bytes at `i * 16`, `i < chunks`, lie inside both ranges;
        // `src + i * 16` is 16-byte aligned; SSE2 is part of the x86_64 baseline.
        unsafe {
            std::arch::asm!(
                "movdqa {a}, xmmword ptr [{s}]",
                "movdqu xmmword ptr [{d}], {a}",
                s = in(reg) src.add(i * 16),
                d = in(reg) dst.add(i * 16),
                a = out(xmm_reg) _,
                options(nostack, preserves_flags)
            );
        }
    }
}

/// Copies `chunks` 16-byte chunks from private `src` to shared `dst`, each chunk with
/// one aligned `movdqa` store, a cache line per loop iteration.
///
/// # Safety
/// `dst` is 16-byte aligned and valid for writes of `chunks * 16` bytes; `src` is valid
/// for reads of as many bytes and does not overlap them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn chunks_to(src: *const u8, dst: *mut u8, chunks: usize) {
    let lines = chunks / 4;
    for i in 0..lines {
        // SAFETY: bytes `i * 64..i * 64 + 64` lie inside both ranges (`i < chunks / 4`),
        // and `dst + i * 64` is 16-byte aligned as `movdqa` needs (the caller's
        // contract); `movdqu` has no alignment need; SSE2 is part of the x86_64 baseline.
        unsafe {
            std::arch::asm!(
                "movdqu {a}, xmmword ptr [{s}]",
                "movdqu {b}, xmmword ptr [{s} + 16]",
                "movdqu {c}, xmmword ptr [{s} + 32]",
                "movdqu {e}, xmmword ptr [{s} + 48]",
                "movdqa xmmword ptr [{d}], {a}",
                "movdqa xmmword ptr [{d} + 16], {b}",
                "movdqa xmmword ptr [{d} + 32], {c}",
                "movdqa xmmword ptr [{d} + 48], {e}",
                s = in(reg) src.add(i * 64),
                d = in(reg) dst.add(i * 64),
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                e = out(xmm_reg) _,
                options(nostack, preserves_flags)
            );
        }
    }
    for i in lines * 4..chunks {
        // SAFETY: as above, for the 16 bytes at `i * 16`, `i < chunks`.
        unsafe {
            std::arch::asm!(
                "movdqu {a}, xmmword ptr [{s}]",
                "movdqa xmmword ptr [{d}], {a}",
                s = in(reg) src.add(i * 16),
                d = in(reg) dst.add(i * 16),
                a = out(xmm_reg) _,
                options(nostack, preserves_flags)
            );
        }
    }
}

/// The word path of [`copy_from_shared`]: bytes up to the first word-aligned address,
/// then words, then bytes.
///
/// # Safety
/// `src` is valid for reads of `len` bytes, `d` for writes of `len` bytes, and the two
/// do not overlap.
#[inline(always)]
unsafe fn words_from(src: *const u8, d: *mut u8, len: usize) {
    let head = head_len(src, len);
    let words = (len - head) / WORD;
    let tail_start = head + words * WORD;
    // SAFETY: (this and the next two blocks) every offset is `< len`, inside both
    // `src..src + len` (valid for reads, by the caller) and `d..d + len`; `src + head`
    // is word-aligned, so the `AtomicUsize` views are aligned; atomic types have the
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

/// The word path of [`copy_to_shared`]: bytes up to the first word-aligned address,
/// then words, then bytes.
///
/// # Safety
/// `s` is valid for reads of `len` bytes, `dst` for writes of `len` bytes, and the two
/// do not overlap.
#[inline(always)]
unsafe fn words_to(s: *const u8, dst: *mut u8, len: usize) {
    let head = head_len(dst, len);
    let words = (len - head) / WORD;
    let tail_start = head + words * WORD;
    // SAFETY: (this and the next two blocks) every offset is `< len`, inside both
    // `s..s + len` and `dst..dst + len` (valid for writes, by the caller); `dst + head`
    // is word-aligned, so the `AtomicUsize` views are aligned; atomic types have the
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
    #[cfg(target_arch = "x86_64")]
    if len >= VECTOR_MIN && vector_whole16() {
        let head = to_align16(src);
        let chunks = (len - head) / 16;
        let tail = head + chunks * 16;
        // SAFETY: `head < 16 <= len` and `tail <= len`, so the three parts split
        // `0..len`, inside `src..src + len` (readable, by the caller) and `dst`, which
        // do not overlap (the caller's contract); `src + head` is 16-byte aligned; the
        // processor has AVX (checked).
        unsafe {
            words_from(src, d, head);
            chunks_from(src.add(head), d.add(head), chunks);
            words_from(src.add(tail), d.add(tail), len - tail);
        }
        return;
    }
    // SAFETY: `src..src + len` is readable (the caller's contract) and does not overlap
    // `dst`, which has `len` bytes.
    unsafe { words_from(src, d, len) }
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
    #[cfg(target_arch = "x86_64")]
    if len >= VECTOR_MIN && vector_whole16() {
        let head = to_align16(dst);
        let chunks = (len - head) / 16;
        let tail = head + chunks * 16;
        // SAFETY: `head < 16 <= len` and `tail <= len`, so the three parts split
        // `0..len`, inside `src` and `dst..dst + len` (writable, by the caller), which
        // do not overlap (the caller's contract); `dst + head` is 16-byte aligned.
        unsafe {
            words_to(s, dst, head);
            chunks_to(s.add(head), dst.add(head), chunks);
            words_to(s.add(tail), dst.add(tail), len - tail);
        }
        return;
    }
    // SAFETY: `dst..dst + len` is writable (the caller's contract) and does not overlap
    // `src`, which has `len` bytes.
    unsafe { words_to(s, dst, len) }
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

    /// Memory aligned to a cache line, so that an offset into it fixes the alignment.
    #[repr(C, align(64))]
    struct Aligned([u8; 704]);

    /// Every length up to 600 (the word and the vector paths, and the switch between
    /// them) at every shared-side and private-side alignment modulo 16, both ways,
    /// against `copy_from_slice`; bytes around the destination range stay untouched.
    #[test]
    fn long_copies_match_plain_copies_at_every_alignment() {
        const GUARD: u8 = 0xc3;
        let pattern: Vec<u8> = (0..700u32).map(|i| (i * 13 + 5) as u8).collect();
        let mut shared = Box::new(Aligned([GUARD; 704]));
        let mut private = Box::new(Aligned([GUARD; 704]));
        for len in 0..=600 {
            for s_off in 0..16 {
                for p_off in 0..16 {
                    let want = &pattern[s_off + p_off..s_off + p_off + len];

                    shared.0.fill(GUARD);
                    private.0[p_off..p_off + len].copy_from_slice(want);
                    let src = &private.0[p_off..p_off + len];
                    // SAFETY: `s_off + len <= 616` lies inside `shared`, a local buffer
                    // nothing else accesses; `src` is another buffer.
                    unsafe { copy_to_shared(src, shared.0.as_mut_ptr().add(s_off)) };
                    assert_eq!(
                        &shared.0[s_off..s_off + len],
                        want,
                        "to {s_off}/{p_off}+{len}"
                    );
                    assert!(shared.0[..s_off].iter().all(|&b| b == GUARD), "to {len}");
                    assert!(
                        shared.0[s_off + len..].iter().all(|&b| b == GUARD),
                        "to {len}"
                    );

                    private.0.fill(GUARD);
                    let dst = &mut private.0[p_off..p_off + len];
                    // SAFETY: as above, read only.
                    unsafe { copy_from_shared(shared.0.as_ptr().add(s_off), dst) };
                    assert_eq!(
                        &private.0[p_off..p_off + len],
                        want,
                        "from {s_off}/{p_off}+{len}"
                    );
                    assert!(private.0[..p_off].iter().all(|&b| b == GUARD), "from {len}");
                    assert!(
                        private.0[p_off + len..].iter().all(|&b| b == GUARD),
                        "from {len}"
                    );
                }
            }
        }
    }

    /// One thread rewrites a shared buffer with two patterns in turn while another
    /// copies it out: every aligned 8-byte word it reads is one pattern or the other,
    /// and so is every aligned 16-byte chunk of a vector copy (x86_64 with AVX).
    #[test]
    fn racing_copies_keep_words_whole() {
        const LEN: usize = 4096 + 40;
        // From a word-aligned start (`Vec<u64>`) plus 8, so that whether the copies
        // start 16-byte aligned depends on the allocation; the checks below use the
        // real addresses.
        const AT: usize = 8;
        let mut buf: Vec<u64> = vec![0x1111_1111_1111_1111; (AT + LEN) / 8 + 1];
        let ones = vec![0x11u8; LEN];
        // Private side at an odd address, never aligned like the shared side.
        let twos = vec![0x22u8; LEN + 3];
        // Raw address: from here on both threads access the buffer only through the
        // racing copies, never through a reference.
        let base = buf.as_mut_ptr() as usize + AT;
        let first_word = base.wrapping_neg() % 8;
        let first_chunk = base.wrapping_neg() % 16;
        #[cfg(target_arch = "x86_64")]
        let whole16 = vector_whole16();
        #[cfg(not(target_arch = "x86_64"))]
        let whole16 = false;
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut seen = [false; 2];
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            let stop = &stop;
            let (ones, twos) = (&ones[..], &twos[3..]);
            scope.spawn(move || {
                while !stop.load(Relaxed) {
                    for pattern in [twos, ones] {
                        // SAFETY: `base..base + LEN` lies inside `buf`, which outlives
                        // the scope; the other thread only reads it with a racing copy.
                        unsafe { copy_to_shared(pattern, base as *mut u8) };
                    }
                }
            });
            let mut out = vec![0u8; LEN + 3];
            let out = &mut out[3..];
            let mut reads = 0;
            // Enough reads to race, and until the writer was seen running (bounded).
            while reads < 20_000 || (seen != [true; 2] && start.elapsed().as_secs() < 30) {
                reads += 1;
                // SAFETY: as above; the writer thread writes only with racing copies.
                unsafe { copy_from_shared(base as *const u8, out) };
                for word in out[first_word..].chunks_exact(8) {
                    assert!(
                        word == [0x11; 8] || word == [0x22; 8],
                        "torn word {word:x?}"
                    );
                }
                if whole16 {
                    for chunk in out[first_chunk..].chunks_exact(16) {
                        assert!(
                            chunk == [0x11; 16] || chunk == [0x22; 16],
                            "torn chunk {chunk:x?}"
                        );
                    }
                }
                seen[0] |= out[LEN / 2] == 0x11;
                seen[1] |= out[LEN / 2] == 0x22;
            }
            stop.store(true, Relaxed);
        });
        // The writer did run concurrently (each value seen at least once).
        assert_eq!(seen, [true, true]);
        drop(buf);
    }
}
