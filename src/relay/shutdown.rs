//! The relay's graceful shutdown, on top of the node's
//! ([`Node::begin_shutdown`]): the spool is committed and synced before the
//! device links close, so every AA a device got is on disk, and the devices
//! get the replies already due; messages still arriving are answered as usual
//! until their links close. A restarted relay recovers the spool and forwards
//! what it holds (at least once: a message the upstream took but had not yet
//! acknowledged is sent again).
//!
//! Without a spool the queue lives in memory: the relay keeps forwarding
//! while shutting down and is drained only once the queue is empty; what is
//! left at the deadline is lost with the process ([`ShutdownSummary::queued`]).

use super::{Relay, RelayEvent};
use crate::spool::SpoolError;
use crate::Node;

/// What was left when a relay stopped ([`Relay::finish_shutdown`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownSummary {
    /// Messages not yet acknowledged by the upstream: kept in the spool for
    /// the next start, or (without a spool) lost.
    pub queued: usize,
    /// The spool holds them (`false`: no spool).
    pub spooled: bool,
    /// The final sync failed (`None`: it succeeded, or no spool).
    pub sync_error: Option<SpoolError>,
}

impl Relay {
    /// Begins a graceful shutdown: commits and syncs the spool (sending the
    /// AAs that makes due), then [`Node::begin_shutdown`]. Keep calling
    /// [`Relay::turn`] until [`Relay::is_drained`] or a deadline, then
    /// [`Relay::finish_shutdown`].
    pub fn begin_shutdown(&mut self, node: &mut Node, out: &mut dyn FnMut(RelayEvent)) {
        if node.is_shutting_down() {
            return;
        }
        // A commit now, even one waiting to retry a failure: every device
        // waiting for it hears AA (on disk) or MSA|AR before its link closes.
        if let Some(d) = self.spool.as_mut() {
            d.retry_at = None;
        }
        self.commit(node, out);
        if let Some(e) = self.sync_spool(node) {
            log::error!("spool: sync at shutdown failed: {e}");
        }
        node.begin_shutdown();
    }

    /// True once every device link has closed and what was accepted is safe:
    /// committed to the spool, or (without a spool) acknowledged upstream.
    pub fn is_drained(&self, node: &Node) -> bool {
        node.is_drained()
            && match &self.spool {
                Some(d) => !d.uncommitted,
                None => self.queue.len() == 0,
            }
    }

    /// Ends the shutdown: a last commit and sync of the spool, then every link
    /// and session closes ([`Node::close_all`]: the upstream session gets its
    /// CLOSE). Their events follow from the node; what was left is returned.
    pub fn finish_shutdown(&mut self, node: &mut Node) -> ShutdownSummary {
        let sync_error = self.sync_spool(node);
        node.close_all();
        ShutdownSummary {
            queued: self.queue.len(),
            spooled: self.spool.is_some(),
            sync_error,
        }
    }

    /// Commits and syncs the spool whatever its fsync mode; the error, if any.
    fn sync_spool(&mut self, node: &Node) -> Option<SpoolError> {
        let d = self.spool.as_mut()?;
        match d.journal.commit_and_sync(node.now()) {
            // The AAs were sent by the commit before; this only makes sure
            // what it wrote is on stable storage.
            Ok(_) => {
                d.uncommitted = false;
                None
            }
            Err(e) => Some(e),
        }
    }
}
