//! The pipeline's events, waiting for the runtime to poll them.

use crate::alloc_guard;
use crate::event::RawEvent;
use std::collections::VecDeque;

/// A bounded queue of events. Its capacity covers what one call into the pipeline can produce
/// (every outstanding mark cleared at once, plus a handful of others), and the runtime polls it
/// after every call; should it still fill, the oldest event is dropped and counted.
#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: VecDeque<RawEvent>,
    capacity: usize,
    /// Events dropped because the queue was full.
    pub(crate) dropped: u64,
}

impl EventQueue {
    /// Room for `capacity` events (allocated here, once).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self { queue: VecDeque::with_capacity(capacity), capacity, dropped: 0 }
    }

    /// Queues an event, dropping the oldest if full.
    pub(crate) fn push(&mut self, event: RawEvent) {
        if self.queue.len() == self.capacity {
            let oldest = self.queue.pop_front();
            self.dropped += 1;
            // A `Started` event owns the stream's identity: dropping it frees memory, which a
            // worker step may only do where it says so.
            alloc_guard::permit(|| drop(oldest));
        }
        self.queue.push_back(event);
    }

    /// No event waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The oldest event, if any.
    pub(crate) fn pop(&mut self) -> Option<RawEvent> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let mut q = EventQueue::new(2);
        for id in 1..=3 {
            q.push(RawEvent::MarkCleared { id });
        }
        assert_eq!(q.dropped, 1);
        assert_eq!(q.pop(), Some(RawEvent::MarkCleared { id: 2 }));
        assert_eq!(q.pop(), Some(RawEvent::MarkCleared { id: 3 }));
        assert_eq!(q.pop(), None);
    }
}
