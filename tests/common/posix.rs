//! Helpers to look at what a mount did: the objects behind it (through the raw client) and
//! the errno and xattr calls std does not wrap.
#![allow(dead_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cosfs::object::{ObjectMeta, ObjectStore};

use super::get_all;
use super::mount::Backend;

pub fn head(b: &Backend, key: &str) -> Option<ObjectMeta> {
    match b.block_on(b.client.head_object(key)) {
        Ok(m) => Some(m),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("head {key}: {e}"),
    }
}

pub fn body(b: &Backend, key: &str) -> Vec<u8> {
    b.block_on(get_all(&b.client, key)).to_vec()
}

pub fn meta(b: &Backend, key: &str, name: &str) -> String {
    let m = head(b, key).unwrap_or_else(|| panic!("{key} is missing"));
    m.user_meta.get(name).cloned().unwrap_or_default()
}

pub fn errno<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

pub fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

pub fn set_xattr(p: &Path, name: &str, value: &[u8], flags: i32) -> i32 {
    let (p, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: valid C strings and a value slice of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

pub fn get_xattr(p: &Path, name: &str) -> Result<Vec<u8>, i32> {
    let (p, n) = (cpath(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the given length.
    let rc = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    buf.truncate(rc as usize);
    Ok(buf)
}
