//! Handing any shared object to a child process: by name, or by an inherited descriptor
//! for anonymous objects.

use std::process::Command;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::object::Object;
use crate::segment::Segment;
use crate::spawn::CommandExt;

/// Sets `var` in the child's environment so that [`from_env`] finds `object`: its name,
/// or the number of an inherited descriptor for an anonymous object.
pub(crate) fn share<'c>(
    object: &Object,
    _layout: Layout,
    command: &'c mut Command,
    var: &str,
) -> Result<&'c mut Command> {
    match object.name() {
        Some(name) => Ok(command.env(var, name)),
        None if object.offset() == 0 => Ok(command.inherit_segment(object.segment(), var)),
        None => Err(Error::Unsupported {
            name: object.label(),
            what: "handing on an object inside an anonymous arena",
        }),
    }
}

/// The object a parent handed over under `var`: a descriptor number (anonymous) or a name.
pub(crate) fn from_env(var: &str, layout: Layout) -> Result<Object> {
    let value = std::env::var(var).map_err(|_| Error::Corrupted {
        name: format!("${var}"),
        what: format!(
            "environment variable {var} is not set: expected the {} a parent handed over with share()",
            layout.kind_name()
        ),
    })?;
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let segment = Segment::from_inherited(var)?;
        return match layout {
            Layout::Header(spec) => Object::from_segment(segment, &spec),
            Layout::Foreign(_) => Ok(Object::foreign(segment)),
        };
    }
    match layout {
        Layout::Header(spec) => Object::open(&value, &spec),
        Layout::Foreign(_) => Ok(Object::foreign(Segment::open(&value)?)),
    }
}
