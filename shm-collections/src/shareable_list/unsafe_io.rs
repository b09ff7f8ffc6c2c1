//! The ShareableList's only `unsafe`: bounds-checked copies between the mapping and
//! local buffers, small enough to inline into the hot paths (`Segment::read_at` and
//! `write_at` are not inlined across crates, which costs a call per access).
//!
//! Like `Segment::read_at`, these copy through raw pointers and never create a
//! reference into the mapping, which other processes may write at any moment.

use std::ptr;

use shm_core::Segment;

use super::error::{ListError, Result};

#[cold]
#[inline(never)]
fn out_of_bounds(seg: &Segment, offset: usize, len: usize) -> ListError {
    ListError::Segment(shm_core::Error::OutOfBounds {
        name: seg.display_name().to_owned(),
        offset,
        len,
        segment_len: seg.len(),
    })
}

#[inline(always)]
fn check(seg: &Segment, offset: usize, len: usize) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= seg.len() => Ok(()),
        _ => Err(out_of_bounds(seg, offset, len)),
    }
}

/// Copies `N` bytes at `offset` out of the segment.
#[inline(always)]
pub(crate) fn read<const N: usize>(seg: &Segment, offset: usize) -> Result<[u8; N]> {
    check(seg, offset, N)?;
    // SAFETY: `offset..offset + N` lies inside the live mapping (checked above), which
    // stays mapped while `seg` is borrowed; `read_unaligned` copies the bytes without
    // creating a reference into the mapping, and any bit pattern is a valid `[u8; N]`.
    Ok(unsafe { ptr::read_unaligned(seg.as_ptr().add(offset).cast::<[u8; N]>()) })
}

/// Copies `buf.len()` bytes at `offset` out of the segment.
#[inline(always)]
pub(crate) fn read_into(seg: &Segment, offset: usize, buf: &mut [u8]) -> Result<()> {
    check(seg, offset, buf.len())?;
    // SAFETY: the source range lies inside the live mapping (checked above); `buf` is a
    // local buffer, never a part of the mapping (no reference into it is handed out),
    // so the two do not overlap.
    unsafe { ptr::copy_nonoverlapping(seg.as_ptr().add(offset), buf.as_mut_ptr(), buf.len()) };
    Ok(())
}

/// Copies `data` into the segment at `offset`.
#[inline(always)]
pub(crate) fn write(seg: &Segment, offset: usize, data: &[u8]) -> Result<()> {
    check(seg, offset, data.len())?;
    // SAFETY: the destination range lies inside the live mapping (checked above);
    // `data` cannot lie in the mapping, as no reference into it is ever handed out.
    unsafe { ptr::copy_nonoverlapping(data.as_ptr(), seg.as_ptr().add(offset), data.len()) };
    Ok(())
}

/// Writes `len` zero bytes at `offset`.
#[inline(always)]
pub(crate) fn zero(seg: &Segment, offset: usize, len: usize) -> Result<()> {
    check(seg, offset, len)?;
    // SAFETY: the range lies inside the live mapping (checked above).
    unsafe { ptr::write_bytes(seg.as_ptr().add(offset), 0, len) };
    Ok(())
}
