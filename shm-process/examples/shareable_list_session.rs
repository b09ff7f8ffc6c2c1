//! Port of 002 §5.3 (an interactive session): a ShareableList of mixed types, its
//! storage limit, and a second handle attached by name.
use shm_collections::{Item, ShareableList};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let items = [
        Item::from("howdy"),
        Item::from(&b"HoWdY"[..]),
        (-273.154).into(),
        100.into(),
        Item::None,
        true.into(),
        42.into(),
    ];
    let a = ShareableList::create(items)?;
    let class = |i: Item| match i {
        Item::Str(_) => "<class 'str'>",
        Item::Bytes(_) => "<class 'bytes'>",
        Item::Float(_) => "<class 'float'>",
        Item::Int(_) => "<class 'int'>",
        Item::None => "<class 'NoneType'>",
        Item::Bool(_) => "<class 'bool'>",
    };
    let types: Vec<_> = a.iter().map(|i| i.map(class)).collect::<Result<_, _>>()?;
    println!("[{}]", types.join(", "));
    println!("{}", a.get(2)?);
    a.set(2, -78.5)?;
    println!("{}", a.get(2)?);
    a.set(2, "dry ice")?; // changing types is supported as well
    println!("{}", a.get(2)?);
    if let Err(e) = a.set(2, "larger than previously allocated storage space") {
        println!("ValueError: {e}");
    }
    println!("{}", a.get(2)?);
    println!("{}", a.len());
    println!("{}", a.index(42)?);
    println!("{}", a.count(&b"howdy"[..])?);
    println!("{}", a.count(&b"HoWdY"[..])?);
    drop(a); // closes and unlinks

    let b = ShareableList::create((0..5).map(Item::Int))?; // in a first process
    let c = ShareableList::open(b.name().expect("named"))?; // in a second process
    println!("{c}");
    c.set_at(-1, -999)?;
    println!("{}", b.at(-1)?);
    Ok(())
}
