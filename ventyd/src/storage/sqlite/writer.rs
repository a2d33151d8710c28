//! The writer thread: one thread per open file owns the connection that writes, takes commits
//! from a queue, and group-commits whatever queued while it was writing.
//!
//! Callers wait for their outcome asynchronously, so a caller's timeout or a dropped future
//! stops the wait at once, also while the file is locked by another process (the thread waits
//! out the busy timeout, not the caller's worker). A commit whose caller stopped waiting may
//! still complete; its retry is safe (the store recognises events it already holds).
//!
//! Group commit: the thread takes the first waiting unit, then every unit that queued behind it
//! (up to [`MAX_GROUP`]; when the last group held several units, it waits up to a quarter of
//! that group's write time, at most [`MAX_GATHER`], for as many again), and writes them in one
//! transaction, each unit in a savepoint of its
//! own, so that a conflict fails only its own unit, and each caller gets its own outcome. With
//! `synchronous=FULL` one sync of the log then serves the whole group.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Ctx;
use super::write::{OwnedUnit, commit_group};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::storage::CommitOutcome;

/// The most units one transaction takes.
const MAX_GROUP: usize = 256;

/// The longest a group waits for callers that committed together last time (a quarter of the
/// last group's write time, at most this).
const MAX_GATHER: Duration = Duration::from_micros(250);

struct Job {
    unit: OwnedUnit,
    reply: oneshot::Sender<Result<CommitOutcome, Error>>,
}

/// The handle on the writer thread; dropping it lets the thread finish its queue, close the
/// connection and exit, and waits for that.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread with the connection it owns from now on.
    pub(super) fn start(conn: Connection, ctx: Arc<Ctx>) -> Result<Writer, Error> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let label = ctx.label.clone();
        let thread = std::thread::Builder::new()
            .name("ventyd-sqlite-writer".to_owned())
            .spawn(move || run(conn, &ctx, &jobs))
            .map_err(|e| {
                StorageError::new(
                    StorageErrorKind::Unavailable,
                    format!("cannot start the writer thread of {label}"),
                )
                .caused_by(e)
            })?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues a unit and waits for its outcome.
    pub(super) async fn commit(
        &self,
        unit: OwnedUnit,
        label: &str,
    ) -> Result<CommitOutcome, Error> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || {
            StorageError::new(
                StorageErrorKind::OutcomeUnknown,
                format!("the writer thread of {label} stopped before answering"),
            )
        };
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { unit, reply })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // Closing the connection checkpoints the log into the file; wait for it, so that a
            // store dropped and opened again finds the file closed.
            let _ = thread.join();
        }
    }
}

fn run(mut conn: Connection, ctx: &Ctx, jobs: &mpsc::Receiver<Job>) {
    // How many units the last group held and how long it took to write: when callers were
    // committing together, the next group waits a moment for them (callers re-queue right after
    // their answer, one by one; without the wait, groups alternate between one unit and all the
    // others, and each pays a sync of its own).
    let mut last_size = 1;
    let mut last_took = Duration::ZERO;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let gather_until = Instant::now() + (last_took / 4).min(MAX_GATHER);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(mpsc::TryRecvError::Empty)
                    if group.len() < last_size && Instant::now() < gather_until =>
                {
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        // A caller that stopped waiting still has its unit written: it may have been sent
        // before the caller gave up, and the caller cannot know.
        let units: Vec<_> = group.iter().map(|job| job.unit.unit()).collect();
        let results = commit_group(&mut conn, ctx, &units);
        drop(units);
        last_size = group.len();
        last_took = started.elapsed();
        for (job, result) in group.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}
