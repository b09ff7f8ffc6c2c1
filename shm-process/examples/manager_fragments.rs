//! Port of 002 §6.2 (usage steps): create a manager, make a list, a dict, a 16-byte
//! segment, a ShareableList and a queue, then shut it down. One `SharedMemoryManager`
//! plays both CPython managers. Prints nothing.
use shm_collections::Item;
use shm_manager::SharedMemoryManager;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smm = SharedMemoryManager::new()?; // 1) the manager
    let (_sl, _sd) = (
        smm.list::<String>("list")?,
        smm.dict::<String, String>("dict")?,
    );
    let _sx = smm.segment(16)?; // a 16-byte segment
    let items = vec![
        Item::from("howdy"),
        Item::from(&b"HoWdY"[..]),
        (-273.154).into(),
        100.into(),
        true.into(),
    ];
    let _sl = smm.shareable_list("shareable", items)?;
    let _q = smm.queue::<String>("queue", 64, 1 << 16)?;
    drop((_sl, _sd, _sx, _q));
    smm.shutdown()?; // 3) unlinks every object it made
    Ok(())
}
