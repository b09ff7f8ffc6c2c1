//! Short Rust type names for people: `std::any::type_name` spells every path in full
//! (`alloc::string::String`), which makes listings and error messages unreadable.
//! Only text shown to people uses the short form; type fingerprints stay on the full
//! name.

/// `name` (as [`std::any::type_name`] writes it) with the module path of every type
/// dropped and one space after each comma, keeping the structure: generics, tuples,
/// arrays, references and pointers.
///
/// A name cut short (a header stores at most a prefix of it) is shortened as far as it
/// goes. Qualified paths (`<T as Trait>::Assoc`) keep their `::` after a `>`.
///
/// ```
/// use shm_core::short_type_name;
/// assert_eq!(short_type_name("alloc::string::String"), "String");
/// assert_eq!(
///     short_type_name("core::option::Option<alloc::vec::Vec<u8>>"),
///     "Option<Vec<u8>>"
/// );
/// assert_eq!(short_type_name("Dict<alloc::string::String,u64>"), "Dict<String, u64>");
/// ```
pub fn short_type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    // Where the path being written started in `out` (after the last delimiter).
    let mut path_start = 0;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                if out.ends_with('>') {
                    // `<T as Trait>::Assoc`: the qualifier is no module path.
                    out.push_str("::");
                    path_start = out.len();
                } else {
                    out.truncate(path_start);
                }
            }
            ',' => {
                out.push_str(", ");
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
                path_start = out.len();
            }
            '<' | '>' | '(' | ')' | '[' | ']' | ';' | ' ' | '&' | '*' | '=' | '+' => {
                out.push(c);
                path_start = out.len();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::short_type_name as s;

    #[test]
    fn plain_and_primitive_names_stay() {
        assert_eq!(s("u64"), "u64");
        assert_eq!(s(""), "");
        assert_eq!(s("String"), "String");
        assert_eq!(s("()"), "()");
    }

    #[test]
    fn module_paths_go_at_every_depth() {
        assert_eq!(s("alloc::string::String"), "String");
        assert_eq!(
            s("core::option::Option<alloc::vec::Vec<u8>>"),
            "Option<Vec<u8>>"
        );
        assert_eq!(
            s("std::collections::hash::map::HashMap<alloc::string::String, u64>"),
            "HashMap<String, u64>"
        );
        assert_eq!(
            s("Dict<alloc::string::String,shm_manager::registry::Entry>"),
            "Dict<String, Entry>"
        );
        assert_eq!(
            s("(alloc::string::String,core::option::Option<i32>)"),
            "(String, Option<i32>)"
        );
        assert_eq!(s("[alloc::string::String; 4]"), "[String; 4]");
        assert_eq!(s("&mut alloc::string::String"), "&mut String");
        assert_eq!(s("*const my::Type"), "*const Type");
        assert_eq!(
            s("alloc::boxed::Box<dyn core::any::Any + core::marker::Send>"),
            "Box<dyn Any + Send>"
        );
    }

    #[test]
    fn truncated_and_odd_names_do_not_panic() {
        assert_eq!(s("Dict<alloc::string::String,shm_m"), "Dict<String, shm_m");
        assert_eq!(s("a::"), "");
        assert_eq!(s("::"), "");
        assert_eq!(s(":"), ":");
        assert_eq!(s("<a::T as b::Tr>::Out"), "<T as Tr>::Out");
        assert_eq!(s("é::ü<ß::x>"), "ü<x>");
    }

    #[test]
    fn errors_print_short_names() {
        let e = crate::Error::TypeMismatch {
            name: "x".into(),
            expected: "Value<alloc::string::String>".into(),
            found: "Value<core::option::Option<u64>>".into(),
        };
        assert_eq!(
            e.to_string(),
            "segment \"x\" holds elements of type Value<Option<u64>>, expected Value<String>"
        );
    }
}
