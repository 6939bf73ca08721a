//! Sources of the application's own on the node's poll (the metrics server's
//! listener and scrape connections): one loop, no thread. The node does not
//! handle their readiness; `poll` records it in a bit set, and their owner
//! takes it with [`Node::take_source_ready`] after each poll.

use super::*;

/// Keys a node can give to sources of its own (bits of the ready set).
pub(crate) const MAX_SOURCES: usize = 64;
/// Their tokens sit just below the listeners'; link slots are far below.
pub(super) const SOURCE_BASE: usize = LISTENER_BASE - MAX_SOURCES;

impl Node {
    /// Registers `src` on the node's poll under `key` (`< MAX_SOURCES`).
    pub(crate) fn register_source<S: mio::event::Source + ?Sized>(
        &mut self,
        src: &mut S,
        key: usize,
        interest: Interest,
    ) -> io::Result<()> {
        let token = source_token(key)?;
        self.poll.registry().register(src, token, interest)
    }

    /// Takes `src` off the node's poll (its key's readiness is dropped too).
    pub(crate) fn deregister_source<S: mio::event::Source + ?Sized>(
        &mut self,
        src: &mut S,
        key: usize,
    ) -> io::Result<()> {
        if key < MAX_SOURCES {
            self.source_ready &= !(1 << key);
        }
        self.poll.registry().deregister(src)
    }

    /// The keys of the sources found ready since the last call (bit `key`).
    pub(crate) fn take_source_ready(&mut self) -> u64 {
        std::mem::take(&mut self.source_ready)
    }

    /// Records readiness of a source token; false for any other token.
    pub(super) fn note_source(&mut self, token: usize) -> bool {
        if (SOURCE_BASE..LISTENER_BASE).contains(&token) {
            self.source_ready |= 1 << (token - SOURCE_BASE);
            return true;
        }
        false
    }
}

fn source_token(key: usize) -> io::Result<Token> {
    if key >= MAX_SOURCES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "source key out of range",
        ));
    }
    Ok(Token(SOURCE_BASE + key))
}
