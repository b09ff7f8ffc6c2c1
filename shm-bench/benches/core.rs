//! shm-core benchmarks and their anchors: the raw syscall sequence and `memcpy`.
//!
//! IDs are `core/<name>`; `cargo xtask bench` pairs them with CPython's figures
//! (`python/core.py`) as listed in `comparisons/core.json`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use shm_core::{Segment, SegmentOptions};

const SMALL: usize = 4096;
const LARGE: usize = 64 << 20;
const PAGE: usize = 4096;

/// The floor for create + unlink: the syscalls alone, reserving pages like we do.
fn raw_create_unlink(len: usize, touch: bool) {
    use rustix::fs::{FallocateFlags, Mode};
    use rustix::mm::{MapFlags, ProtFlags};
    use rustix::shm::OFlags;
    let name = format!("/shm-bench-raw-{}", std::process::id());
    let fd = rustix::shm::open(
        name.as_str(),
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
        Mode::RUSR | Mode::WUSR,
    )
    .expect("shm_open");
    rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
    rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, len as u64).expect("fallocate");
    // SAFETY: a fresh shared mapping of a file we just sized; unmapped below and
    // never handed out.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )
    }
    .expect("mmap");
    if touch {
        touch_pages(ptr.cast(), len);
    }
    // SAFETY: `ptr`/`len` is exactly the mapping made above.
    unsafe { rustix::mm::munmap(ptr, len) }.expect("munmap");
    drop(fd);
    rustix::shm::unlink(name.as_str()).expect("shm_unlink");
}

fn touch_pages(ptr: *mut u8, len: usize) {
    for off in (0..len).step_by(PAGE) {
        // SAFETY: `off < len`, inside the caller's mapping.
        unsafe { ptr.add(off).write_volatile(1) };
    }
}

fn create_unlink(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("segment_create_unlink_4k", |b| {
        b.iter(|| black_box(Segment::create(SMALL).expect("create")));
    });
    g.bench_function("raw_syscalls_create_unlink_4k", |b| {
        b.iter(|| raw_create_unlink(SMALL, false))
    });
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function("segment_create_touch_unlink_64m", |b| {
        b.iter(|| {
            let seg = Segment::create(LARGE).expect("create");
            touch_pages(seg.as_ptr(), seg.len());
        });
    });
    g.bench_function("segment_create_lazy_touch_unlink_64m", |b| {
        b.iter(|| {
            let seg = SegmentOptions::new()
                .reserve(false)
                .create(LARGE)
                .expect("create");
            touch_pages(seg.as_ptr(), seg.len());
        });
    });
    g.bench_function("raw_syscalls_create_touch_unlink_64m", |b| {
        b.iter(|| raw_create_unlink(LARGE, true))
    });
    g.finish();
}

fn open_existing(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let seg = Segment::create(SMALL).expect("create");
    let name = seg.name().expect("named").to_owned();
    g.bench_function("segment_open_4k", |b| {
        b.iter(|| black_box(Segment::open(&name).expect("open")))
    });
    g.finish();
}

fn bulk_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.throughput(criterion::Throughput::Bytes(LARGE as u64));
    let src = vec![0x5Au8; LARGE];
    let seg = Segment::create(LARGE).expect("create");
    g.bench_function("bulk_write_64m", |b| {
        b.iter(|| seg.write_at(0, black_box(&src)).expect("write"))
    });
    let mut dst = vec![0u8; LARGE];
    g.bench_function("bulk_read_64m", |b| {
        b.iter(|| seg.read_at(0, black_box(&mut dst)).expect("read"))
    });
    let mut heap = vec![1u8; LARGE];
    g.bench_function("memcpy_64m", |b| {
        b.iter(|| heap.copy_from_slice(black_box(&src)))
    });
    g.finish();
}

/// A 4 KiB racing copy into a mapping and back out, in one thread and in the cache: the
/// copy cost of one `queue/bytes_4k_throughput` message, against two plain `memcpy`s.
fn small_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.throughput(criterion::Throughput::Bytes(2 * SMALL as u64));
    let seg = Segment::create(2 * SMALL).expect("create");
    let src = vec![0x5Au8; SMALL];
    let mut dst = vec![0u8; SMALL];
    // Word-aligned but not 16-byte aligned: the copies have a head and a tail.
    const AT: usize = 8;
    g.bench_function("shared_copy_4k_in_out", |b| {
        b.iter(|| {
            seg.write_at(AT, black_box(&src)).expect("write");
            seg.read_at(AT, black_box(&mut dst)).expect("read");
        })
    });
    let mut heap = vec![0u8; 2 * SMALL];
    g.bench_function("memcpy_4k_in_out", |b| {
        b.iter(|| {
            heap[AT..AT + SMALL].copy_from_slice(black_box(&src));
            black_box(&mut dst).copy_from_slice(black_box(&heap[AT..AT + SMALL]));
        })
    });
    g.finish();
}

criterion_group!(benches, create_unlink, open_existing, bulk_copy, small_copy);
criterion_main!(benches);
