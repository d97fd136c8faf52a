//! Faults at the ports, switched on and off while a stack runs: a queue that refuses the
//! notify queue's messages (as a crash between a commit and its enqueue would leave
//! them), mail that fails for one address, and a send whose answer is lost (as a crash
//! between a send and its record would).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use app::ports::{Message, Notifier, NotifyError, Queue, QueueError, QueueName, WorkItem};
use app::App;
use async_trait::async_trait;

#[derive(Default)]
pub struct Faults {
    /// The notify queue refuses every message.
    pub notices_unqueued: AtomicBool,
    /// Mail to this address fails.
    pub mail_down_for: Mutex<Option<String>>,
    /// The next mail to this address is sent, then reported failed.
    pub answer_lost_for: Mutex<Option<String>>,
    /// Every mail tried, by address, in order, with when.
    pub tried: Mutex<Vec<String>>,
    pub tried_at: Mutex<Vec<(String, std::time::Instant)>>,
}

impl Faults {
    /// What `server::Options::wrap` takes: the app with these faults around its ports.
    pub fn wrap(self: &Arc<Self>) -> Arc<dyn Fn(App) -> App + Send + Sync> {
        let faults = self.clone();
        Arc::new(move |mut app: App| {
            app.queue = Arc::new(FaultyQueue {
                inner: app.queue.clone(),
                faults: faults.clone(),
            });
            app.notifier = Arc::new(FaultyNotifier {
                inner: app.notifier.clone(),
                faults: faults.clone(),
            });
            app
        })
    }

    /// How many times mail to `to` was tried.
    pub fn tries(&self, to: &str) -> usize {
        self.tried.lock().unwrap().iter().filter(|t| *t == to).count()
    }
}

struct FaultyQueue {
    inner: Arc<dyn Queue>,
    faults: Arc<Faults>,
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn send(&self, queue: QueueName, item: &WorkItem) -> Result<(), QueueError> {
        if queue == QueueName::Notify && self.faults.notices_unqueued.load(Ordering::SeqCst) {
            return Err(QueueError("injected: the notify queue is unavailable".into()));
        }
        self.inner.send(queue, item).await
    }

    async fn retry_in(&self, queue: QueueName, receipt: &str, after: std::time::Duration) -> Result<(), QueueError> {
        self.inner.retry_in(queue, receipt, after).await
    }
}

struct FaultyNotifier {
    inner: Arc<dyn Notifier>,
    faults: Arc<Faults>,
}

#[async_trait]
impl Notifier for FaultyNotifier {
    async fn send(&self, m: &Message) -> Result<(), NotifyError> {
        self.faults.tried.lock().unwrap().push(m.to.clone());
        self.faults
            .tried_at
            .lock()
            .unwrap()
            .push((m.to.clone(), std::time::Instant::now()));
        if self.faults.mail_down_for.lock().unwrap().as_deref() == Some(m.to.as_str()) {
            return Err(NotifyError(format!("injected: mail to {} fails", m.to)));
        }
        self.inner.send(m).await?;
        let mut lost = self.faults.answer_lost_for.lock().unwrap();
        if lost.as_deref() == Some(m.to.as_str()) {
            *lost = None;
            return Err(NotifyError("injected: sent, but the answer was lost".into()));
        }
        Ok(())
    }
}
