//! Host marks between `mark()` and the carrier's echo.
//!
//! Each outstanding mark has a slot with its name (copied once into preallocated storage, so the
//! worker can write the outbound `mark` message and match the echo without allocating) and where
//! it sits in its utterance. A `clear` decides, from the playout model, which sent marks the
//! caller had really reached; the carrier's echoes of the others are reported as cleared, not
//! played (unless the carrier's echo says otherwise).

use crate::protocol::MarkSaid;

/// Where a mark is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkState {
    /// Waiting in the outbound queue.
    Queued,
    /// Sent to the carrier, after `utterance_pos` samples of its utterance, playing out at model
    /// time `due_us`.
    Sent { utterance_pos: u64, due_us: u64, clear: Clear, order: u64 },
}

/// What a clear did to a sent mark before its echo came. (One tag and a time: no larger than
/// the `Option` of a time it replaced, in a slot every outstanding mark of a session holds.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clear {
    /// No clear yet.
    None,
    /// A clear at `at_us` flushed it before it played: its echo says cleared.
    Flushed { at_us: u64 },
    /// On a carrier that echoes only what played, a clear at `at_us` found it played by the
    /// model: its echo is waited for a while only (the model may have run ahead of the carrier,
    /// and the clear dropped it).
    Reached { at_us: u64 },
}

impl Clear {
    /// When the clear came, if one did.
    fn at_us(self) -> Option<u64> {
        match self {
            Self::None => None,
            Self::Flushed { at_us } | Self::Reached { at_us } => Some(at_us),
        }
    }
}

#[derive(Debug)]
struct MarkSlot {
    id: u32,
    /// Length of the name, which sits in the table's `names` at this slot's index.
    len: usize,
    state: Option<MarkState>,
}

/// What an echo turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkEcho {
    /// The caller heard everything before the mark, which sat at `utterance_pos` samples.
    Played {
        /// Host id of the mark.
        id: u32,
        /// Position of the mark in its utterance, 8 kHz samples.
        utterance_pos: u64,
    },
    /// A clear flushed the mark before it played.
    Cleared {
        /// Host id of the mark.
        id: u32,
    },
}

/// Fixed table of outstanding host marks.
#[derive(Debug)]
pub struct MarkTable {
    slots: Vec<MarkSlot>,
    /// Slot `i`'s name is `names[i * max_name..][..slots[i].len]`: one allocation for all names.
    names: Box<[u8]>,
    max_name: usize,
    /// Send order, so echoes of marks sharing a name resolve oldest first (the carrier echoes
    /// in order).
    sent_count: u64,
    /// Sent marks a clear flushed, still waiting for their echo: while there are none (nearly
    /// always), the per-step checks for them scan nothing.
    cleared_waiting: usize,
}

impl MarkTable {
    /// Room for `capacity` marks with names of up to `max_name` bytes.
    pub fn new(capacity: usize, max_name: usize) -> Self {
        let slots = (0..capacity).map(|_| MarkSlot { id: 0, len: 0, state: None }).collect();
        Self {
            slots,
            names: vec![0; capacity * max_name].into_boxed_slice(),
            max_name,
            sent_count: 0,
            cleared_waiting: 0,
        }
    }

    fn name_of(&self, i: usize) -> &[u8] {
        &self.names[i * self.max_name..][..self.slots[i].len]
    }

    /// Registers a queued mark. False when the table is full or the name too long.
    pub fn insert(&mut self, id: u32, name: &[u8]) -> bool {
        if name.len() > self.max_name {
            return false;
        }
        let Some(i) = self.slots.iter().position(|s| s.state.is_none()) else {
            return false;
        };
        self.names[i * self.max_name..][..name.len()].copy_from_slice(name);
        self.slots[i] = MarkSlot { id, len: name.len(), state: Some(MarkState::Queued) };
        true
    }

    /// The name of mark `id`, if outstanding.
    pub fn name(&self, id: u32) -> Option<&str> {
        let i = self.slots.iter().position(|s| s.state.is_some() && s.id == id)?;
        std::str::from_utf8(self.name_of(i)).ok()
    }

    /// Mark `id` went out after `utterance_pos` samples; it plays at model time `due_us`.
    pub fn sent(&mut self, id: u32, utterance_pos: u64, due_us: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.state == Some(MarkState::Queued) && s.id == id) {
            slot.state = Some(MarkState::Sent {
                utterance_pos,
                due_us,
                clear: Clear::None,
                order: self.sent_count,
            });
            self.sent_count += 1;
        }
    }

    /// Forgets a queued mark that was flushed before being sent.
    pub fn drop_queued(&mut self, id: u32) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.state == Some(MarkState::Queued) && s.id == id) {
            slot.state = None;
        }
    }

    /// A clear at `now_us`: sent marks the caller had not reached by then (by the model corrected
    /// with `lag_us`) will be reported cleared when echoed.
    pub fn on_clear(&mut self, now_us: u64, lag_us: u64) {
        for slot in &mut self.slots {
            if let Some(MarkState::Sent { due_us, clear, .. }) = &mut slot.state
                && *due_us + lag_us > now_us
                && *clear == Clear::None
            {
                *clear = Clear::Flushed { at_us: now_us };
                self.cleared_waiting += 1;
            }
        }
    }

    /// The carrier echoed `name`, saying `said` of it (most carriers say nothing, and the model
    /// decides: a mark a clear flushed before it played was cleared). `None` if no sent mark has
    /// that name (an echo of a mark never sent, or sent twice).
    ///
    /// Carriers echo in send order, so an echo also settles every cleared mark sent before this
    /// one that was not echoed: the carrier will not echo it any more. Those go to `unechoed`.
    pub fn echoed(&mut self, name: &str, said: MarkSaid, mut unechoed: impl FnMut(u32)) -> Option<MarkEcho> {
        let i = (0..self.slots.len())
            .filter(|&i| self.name_of(i) == name.as_bytes())
            .filter_map(|i| match self.slots[i].state {
                Some(MarkState::Sent { order, .. }) => Some((order, i)),
                _ => None,
            })
            .min_by_key(|(order, _)| *order)
            .map(|(_, i)| i)?;
        let Some(MarkState::Sent { order: echoed_order, .. }) = self.slots[i].state else {
            return None;
        };
        while self.cleared_waiting > 0
            && let Some(j) =
                self.oldest_sent(|_, cleared_us, order| cleared_us.is_some() && order < echoed_order)
        {
            unechoed(self.slots[j].id);
            self.slots[j].state = None;
            self.cleared_waiting -= 1;
        }
        let slot = &mut self.slots[i];
        let Some(MarkState::Sent { utterance_pos, clear, .. }) = slot.state.take() else {
            return None;
        };
        if clear != Clear::None {
            self.cleared_waiting -= 1;
        }
        Some(match (said, clear) {
            (MarkSaid::Cleared, _) | (MarkSaid::Nothing, Clear::Flushed { .. }) => MarkEcho::Cleared { id: slot.id },
            (MarkSaid::Played, _) | (MarkSaid::Nothing, Clear::None | Clear::Reached { .. }) => {
                MarkEcho::Played { id: slot.id, utterance_pos }
            }
        })
    }

    /// A clear at `now_us` on a carrier that sends no echo for what it clears: every sent mark
    /// the caller had not reached (by the model corrected with `lag_us`) is forgotten and
    /// reported through `on_mark`, oldest first. Marks already reached keep waiting for their
    /// due time, or with `echoes` (the carrier echoes what played) for their echo, until the
    /// clear's grace ([`Self::expire_cleared`]): the model may have taken for played a mark the
    /// carrier had not reached yet, which the clear dropped and which will never be echoed.
    pub fn clear_unreached(&mut self, now_us: u64, lag_us: u64, echoes: bool, mut on_mark: impl FnMut(u32)) {
        // (Marks a clear flushed on a carrier that echoes them are the echo's, or the grace's.)
        while let Some(i) = self.oldest_sent(|due_us, cleared, _| cleared.is_none() && due_us + lag_us > now_us) {
            on_mark(self.slots[i].id);
            self.slots[i].state = None;
        }
        if !echoes {
            return;
        }
        for slot in &mut self.slots {
            if let Some(MarkState::Sent { clear: clear @ Clear::None, .. }) = &mut slot.state {
                *clear = Clear::Reached { at_us: now_us };
                self.cleared_waiting += 1;
            }
        }
    }

    /// For a carrier that confirms nothing, the engine's own model is the truth: every sent mark
    /// due by `now_us` has played. Each is forgotten and reported through `on_mark(id,
    /// utterance_pos)`, oldest first.
    pub fn resolve_due(&mut self, now_us: u64, mut on_mark: impl FnMut(u32, u64)) {
        while let Some(i) = self.oldest_sent(|due_us, cleared, _| cleared.is_none() && due_us <= now_us) {
            if let Some(MarkState::Sent { utterance_pos, .. }) = self.slots[i].state.take() {
                on_mark(self.slots[i].id, utterance_pos);
            }
        }
    }

    /// Cleared marks still unechoed `grace_us` after their clear: the carrier will not echo them
    /// (it echoes a clear's marks at once, if at all). Each is forgotten and reported through
    /// `on_mark`, oldest first.
    pub fn expire_cleared(&mut self, now_us: u64, grace_us: u64, mut on_mark: impl FnMut(u32)) {
        while self.cleared_waiting > 0
            && let Some(i) =
                self.oldest_sent(|_, cleared_us, _| cleared_us.is_some_and(|c| c + grace_us <= now_us))
        {
            on_mark(self.slots[i].id);
            self.slots[i].state = None;
            self.cleared_waiting -= 1;
        }
    }

    /// When the earliest cleared mark stops waiting for its echo (µs), if any waits.
    pub fn next_cleared_expiry_us(&self, grace_us: u64) -> Option<u64> {
        if self.cleared_waiting == 0 {
            return None;
        }
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                Some(MarkState::Sent { clear, .. }) => clear.at_us().map(|c| c + grace_us),
                _ => None,
            })
            .min()
    }

    /// When the earliest sent mark is due (model time, µs), if any was sent.
    pub fn next_due_us(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| match s.state {
                Some(MarkState::Sent { due_us, .. }) => Some(due_us),
                _ => None,
            })
            .min()
    }

    /// The slot of the sent mark sent first among those `keep(due_us, cleared_us, order)` keeps.
    fn oldest_sent(&self, keep: impl Fn(u64, Option<u64>, u64) -> bool) -> Option<usize> {
        (0..self.slots.len())
            .filter_map(|i| match self.slots[i].state {
                Some(MarkState::Sent { due_us, clear, order, .. }) if keep(due_us, clear.at_us(), order) => {
                    Some((order, i))
                }
                _ => None,
            })
            .min_by_key(|&(order, _)| order)
            .map(|(_, i)| i)
    }

    /// Ends every outstanding mark (the stream stopped): reports each id.
    pub fn drain(&mut self, mut on_mark: impl FnMut(u32)) {
        self.cleared_waiting = 0;
        for slot in &mut self.slots {
            if slot.state.take().is_some() {
                on_mark(slot.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_before_clear_is_played_after_clear_is_cleared() {
        let mut t = MarkTable::new(4, 16);
        assert!(t.insert(1, b"first"));
        assert!(t.insert(2, b"second"));
        t.sent(1, 800, 100_000);
        t.sent(2, 1600, 200_000);
        // Cleared at 150 ms: "first" had played (due 100 ms), "second" had not.
        t.on_clear(150_000, 0);
        assert_eq!(t.echoed("second", MarkSaid::Nothing, |_| {}), Some(MarkEcho::Cleared { id: 2 }));
        assert_eq!(t.echoed("first", MarkSaid::Nothing, |_| {}), Some(MarkEcho::Played { id: 1, utterance_pos: 800 }));
        assert_eq!(t.echoed("first", MarkSaid::Nothing, |_| {}), None);
    }

    #[test]
    fn marks_sharing_a_name_resolve_in_send_order() {
        let mut t = MarkTable::new(4, 16);
        // The later mark takes the lower slot: slot order must not decide.
        assert!(t.insert(1, b"x"));
        assert!(t.insert(9, b"other"));
        t.sent(1, 100, 10);
        assert!(t.insert(2, b"x"));
        t.sent(9, 150, 15);
        t.sent(2, 200, 20);
        t.drain(|_| {});
        assert!(t.insert(3, b"x"));
        assert!(t.insert(4, b"x"));
        t.sent(4, 300, 30);
        t.sent(3, 400, 40);
        assert_eq!(t.echoed("x", MarkSaid::Nothing, |_| {}), Some(MarkEcho::Played { id: 4, utterance_pos: 300 }));
        assert_eq!(t.echoed("x", MarkSaid::Nothing, |_| {}), Some(MarkEcho::Played { id: 3, utterance_pos: 400 }));
    }

    #[test]
    fn without_echoes_marks_resolve_by_due_time_and_clear_reports_the_unreached() {
        let mut t = MarkTable::new(4, 16);
        for (id, name) in [(1, b"a"), (2, b"b"), (3, b"c")] {
            assert!(t.insert(id, name));
        }
        t.sent(2, 1600, 200_000);
        t.sent(1, 800, 100_000);
        t.sent(3, 2400, 300_000);
        assert_eq!(t.next_due_us(), Some(100_000));
        let mut played = vec![];
        t.resolve_due(99_999, |id, pos| played.push((id, pos)));
        assert!(played.is_empty());
        t.resolve_due(200_000, |id, pos| played.push((id, pos)));
        // Oldest sent first: mark 2 went out before mark 1.
        assert_eq!(played, [(2, 1600), (1, 800)]);
        let mut cleared = vec![];
        t.clear_unreached(250_000, 0, false, |id| cleared.push(id));
        assert_eq!(cleared, [3]);
        assert_eq!(t.next_due_us(), None);
        assert_eq!(t.echoed("c", MarkSaid::Nothing, |_| {}), None);
    }

    #[test]
    fn on_a_carrier_echoing_only_what_played_a_reached_mark_waits_for_its_echo_a_while_only() {
        let mut t = MarkTable::new(4, 16);
        for (id, name) in [(1, b"a"), (2, b"b"), (3, b"c")] {
            assert!(t.insert(id, name));
        }
        t.sent(1, 800, 100_000);
        t.sent(2, 1600, 200_000);
        t.sent(3, 2400, 300_000);
        // Cleared at 250 ms: by the model "a" and "b" had played; "c" had not, and never will.
        let mut cleared = vec![];
        t.clear_unreached(250_000, 0, true, |id| cleared.push(id));
        assert_eq!(cleared, [3]);
        // "a" is echoed: it played.
        assert_eq!(t.echoed("a", MarkSaid::Nothing, |_| {}), Some(MarkEcho::Played { id: 1, utterance_pos: 800 }));
        // "b" had not really played (the model ran ahead of the carrier): the clear dropped it
        // and no echo comes. Past the grace it is reported cleared, and its slot is free.
        assert_eq!(t.next_cleared_expiry_us(1_000_000), Some(1_250_000));
        let mut expired = vec![];
        t.expire_cleared(1_249_999, 1_000_000, |id| expired.push(id));
        assert!(expired.is_empty());
        t.expire_cleared(1_250_000, 1_000_000, |id| expired.push(id));
        assert_eq!(expired, [2]);
        assert_eq!(t.next_cleared_expiry_us(1_000_000), None);
        assert_eq!(t.echoed("b", MarkSaid::Nothing, |_| {}), None);
        assert!(t.insert(4, b"d") && t.insert(5, b"e") && t.insert(6, b"f") && t.insert(7, b"g"));
    }

    #[test]
    fn limits_are_enforced() {
        let mut t = MarkTable::new(1, 4);
        assert!(!t.insert(1, b"too long"));
        assert!(t.insert(1, b"ok"));
        assert!(!t.insert(2, b"no"));
        // An echo of a queued (unsent) mark is not a valid echo.
        assert_eq!(t.echoed("ok", MarkSaid::Nothing, |_| {}), None);
        t.drop_queued(1);
        assert!(t.insert(2, b"yes"));
    }

    #[test]
    fn cleared_marks_the_carrier_never_echoes_are_settled() {
        let mut t = MarkTable::new(4, 16);
        for (id, name) in [(1, b"a"), (2, b"b"), (3, b"c")] {
            assert!(t.insert(id, name));
        }
        t.sent(1, 800, 100_000);
        t.sent(2, 1600, 200_000);
        // A clear at 50 ms flushes both; this carrier echoes neither.
        t.on_clear(50_000, 0);
        t.sent(3, 2400, 300_000);
        assert_eq!(t.next_cleared_expiry_us(1_000_000), Some(1_050_000));
        // The echo of a mark sent after them shows they never will be: settled, oldest first.
        let mut unechoed = vec![];
        assert_eq!(t.echoed("c", MarkSaid::Nothing, |id| unechoed.push(id)), Some(MarkEcho::Played { id: 3, utterance_pos: 2400 }));
        assert_eq!(unechoed, [1, 2]);
        assert_eq!(t.next_cleared_expiry_us(1_000_000), None);

        // With no later echo, the grace period settles them.
        assert!(t.insert(4, b"d"));
        t.sent(4, 3200, 400_000);
        t.on_clear(350_000, 0);
        let mut expired = vec![];
        t.expire_cleared(1_349_999, 1_000_000, |id| expired.push(id));
        assert!(expired.is_empty());
        t.expire_cleared(1_350_000, 1_000_000, |id| expired.push(id));
        assert_eq!(expired, [4]);
        assert_eq!(t.echoed("d", MarkSaid::Nothing, |_| {}), None);
    }
}
