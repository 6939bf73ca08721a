//! Fallible allocation for everything sized at start (slot tables, byte
//! arenas, timer heaps, queues): a size the host cannot provide is an error the
//! caller can report ([`crate::SetupError::OutOfMemory`], a C result code),
//! never an abort of the host process.

use std::collections::VecDeque;
use std::fmt;

/// An allocation sized at start could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError {
    /// What it was for.
    pub what: &'static str,
    /// Bytes it wanted (`usize::MAX`: more than can be addressed).
    pub bytes: usize,
}

impl AllocError {
    /// A size that overflowed before it could be asked for.
    pub(crate) const fn too_large(what: &'static str) -> Self {
        AllocError {
            what,
            bytes: usize::MAX,
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bytes == usize::MAX {
            write!(
                f,
                "out of memory: {} needs more bytes than can be addressed",
                self.what
            )
        } else {
            write!(f, "out of memory: {} needs {} bytes", self.what, self.bytes)
        }
    }
}

impl std::error::Error for AllocError {}

fn bytes_of<T>(n: usize) -> usize {
    n.saturating_mul(size_of::<T>())
}

/// An empty `Vec` with room for exactly `n` elements.
pub(crate) fn vec_with_capacity<T>(n: usize, what: &'static str) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| AllocError {
        what,
        bytes: bytes_of::<T>(n),
    })?;
    Ok(v)
}

/// An empty `VecDeque` with room for at least `n` elements.
pub(crate) fn deque_with_capacity<T>(
    n: usize,
    what: &'static str,
) -> Result<VecDeque<T>, AllocError> {
    let mut v = VecDeque::new();
    v.try_reserve_exact(n).map_err(|_| AllocError {
        what,
        bytes: bytes_of::<T>(n),
    })?;
    Ok(v)
}

/// `n` copies of `value`.
pub(crate) fn vec_filled<T: Clone>(
    n: usize,
    value: T,
    what: &'static str,
) -> Result<Vec<T>, AllocError> {
    let mut v = vec_with_capacity(n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// `n` zero bytes from the allocator's zeroed memory (calloc), so pages never
/// touched stay virtual, as with `vec![0u8; n]` (which aborts instead of failing).
#[allow(unsafe_code)]
pub(crate) fn zeroed_bytes(n: usize, what: &'static str) -> Result<Box<[u8]>, AllocError> {
    use std::alloc::{alloc_zeroed, Layout};
    if n == 0 {
        return Ok(Box::default());
    }
    let err = AllocError { what, bytes: n };
    let layout = Layout::array::<u8>(n).map_err(|_| err)?;
    // SAFETY: `layout` has a non-zero size (n > 0).
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return Err(err);
    }
    let slice = std::ptr::slice_from_raw_parts_mut(p, n);
    // SAFETY: `p` is a live, zero-initialised allocation of `n` bytes made by the
    // global allocator with the layout of `[u8; n]`, which is what `Box<[u8]>`
    // frees it with; nothing else owns it.
    Ok(unsafe { Box::from_raw(slice) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_size_is_an_error_naming_it() {
        // Beyond isize::MAX on every target (half the address space could be
        // mapped by a 32-bit emulator).
        let too_big = usize::MAX / 2 + 1;
        let e = zeroed_bytes(too_big, "arena").unwrap_err();
        assert_eq!(
            e,
            AllocError {
                what: "arena",
                bytes: too_big
            }
        );
        let e = vec_with_capacity::<u64>(usize::MAX / 4, "table").unwrap_err();
        assert_eq!(e.bytes, usize::MAX);
        assert!(deque_with_capacity::<u32>(usize::MAX / 2, "q").is_err());
        assert!(e.to_string().contains("table"));
    }

    #[test]
    fn zeroed_bytes_are_zero_and_sized() {
        let b = zeroed_bytes(4096, "x").unwrap();
        assert_eq!(b.len(), 4096);
        assert!(b.iter().all(|&x| x == 0));
        assert!(zeroed_bytes(0, "x").unwrap().is_empty());
    }
}
