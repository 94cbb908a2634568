//! The node's background tasks: one set, one cancellation token. Components spawn their loops
//! here; when the node is dropped (or shut down) the token fires and every loop ends, and the set
//! aborts whatever is left.

use std::future::Future;

use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) struct Tasks {
    token: CancellationToken,
    set: Mutex<JoinSet<()>>,
}

impl Tasks {
    pub(crate) fn new() -> Self {
        Tasks { token: CancellationToken::new(), set: Mutex::new(JoinSet::new()) }
    }

    /// A token that fires when the node stops: loops select on it.
    pub(crate) fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` until it ends or the node stops.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.set.lock();
        // Reap finished tasks so the set does not grow with them.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Stops every task.
    pub(crate) fn shutdown(&self) {
        self.token.cancel();
        self.set.lock().abort_all();
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.shutdown();
    }
}
