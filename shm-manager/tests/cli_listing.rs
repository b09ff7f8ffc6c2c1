#[test]
fn type_errors_print_short_type_names() {
    let (m, _guard) = manager("cli-typeerr");
    m.dict::<String, u64>("d").unwrap();
    let e = m
        .dict::<String, Option<Vec<u8>>>("d")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("alloc::") && !e.contains("core::"), "{e}");
    assert!(e.contains("Dict<String, u64>"), "{e}");
    assert!(e.contains("Dict<String, Option<Vec<u8>>>"), "{e}");
    m.shutdown().unwrap();
}
