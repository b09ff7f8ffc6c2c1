//! Port of 002 §5.2 (an interactive session): a segment attached by name. Python's
//! `buf` is a memoryview; a `Segment` is read and written with bounds-checked copies.
use shm_collections::Item;
use shm_core::Segment;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shm_a = Segment::create(10)?; // unlinked when it drops
    println!("<class 'memoryview'>"); // Python's type(shm_a.buf); here: read_at/write_at
    println!("{}", shm_a.len());
    shm_a.write_at(0, &[22, 33, 44, 55])?; // modify several at once
    shm_a.write_at(4, &[100])?; // modify a single byte
    let shm_b = Segment::open(shm_a.name().expect("named"))?; // attach by name
    let mut copy = [0u8; 5];
    shm_b.read_at(0, &mut copy)?;
    println!("array('b', {:?})", copy.map(|b| b as i8));
    shm_b.write_at(0, b"howdy")?; // modify via shm_b
    shm_a.read_at(0, &mut copy)?; // read via shm_a
    println!("{}", Item::from(&copy[..]));
    Ok(())
}
