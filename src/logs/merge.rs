//! Several hosts' lines in one time order. Each host's lines arrive in its own order and keep
//! it (a host whose clock steps back is not reshuffled); between hosts, the line printed next is
//! the earliest waiting one by its host's clock corrected by that clock's offset from this
//! machine's. While following, a line is held until every host still sending has a line
//! waiting too, or for [`HOLD`] at most: a quiet host delays the others by that much, no more.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::journal::Entry;

/// How long a line waits for hosts that have sent nothing newer.
pub(super) const HOLD: Duration = Duration::from_millis(500);

pub(super) struct Merge {
    hosts: Vec<Host>,
}

#[derive(Default)]
struct Host {
    waiting: VecDeque<(Entry, Instant)>,
    /// The host's clock minus this machine's, in microseconds.
    offset: i64,
    /// More lines may come.
    live: bool,
}

impl Merge {
    pub(super) fn new(hosts: usize) -> Merge {
        Merge {
            hosts: (0..hosts)
                .map(|_| Host {
                    live: true,
                    ..Host::default()
                })
                .collect(),
        }
    }

    pub(super) fn set_offset(&mut self, host: usize, offset: i64) {
        self.hosts[host].offset = offset;
    }

    pub(super) fn push(&mut self, host: usize, entry: Entry, arrived: Instant) {
        self.hosts[host].waiting.push_back((entry, arrived));
    }

    /// No more lines will come from `host`.
    pub(super) fn end(&mut self, host: usize) {
        self.hosts[host].live = false;
    }

    pub(super) fn is_done(&self) -> bool {
        self.hosts.iter().all(|h| !h.live && h.waiting.is_empty())
    }

    /// The next line to print at `now`, with its host's index.
    pub(super) fn pop(&mut self, now: Instant) -> Option<(usize, Entry)> {
        let (index, arrived) = self.earliest()?;
        let everyone_waiting = self.hosts.iter().all(|h| !h.live || !h.waiting.is_empty());
        if everyone_waiting || now >= arrived + HOLD {
            let (entry, _) = self.hosts[index].waiting.pop_front()?;
            return Some((index, entry));
        }
        None
    }

    /// Everything waiting, in order (nothing more will come, or nothing more is waited for).
    pub(super) fn drain(&mut self) -> Vec<(usize, Entry)> {
        let mut out = Vec::new();
        while let Some((index, _)) = self.earliest() {
            if let Some((entry, _)) = self.hosts[index].waiting.pop_front() {
                out.push((index, entry));
            }
        }
        out
    }

    /// When the line held longest may be printed anyway.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.earliest().map(|(_, arrived)| arrived + HOLD)
    }

    /// The host whose first waiting line is earliest, and when that line arrived.
    fn earliest(&self) -> Option<(usize, Instant)> {
        self.hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let (entry, arrived) = h.waiting.front()?;
                Some((entry.at - h.offset, i, *arrived))
            })
            .min_by_key(|(at, i, _)| (*at, *i))
            .map(|(_, i, arrived)| (i, arrived))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, message: &str) -> Entry {
        Entry {
            at,
            cursor: String::new(),
            hostname: String::new(),
            identifier: "app".into(),
            pid: String::new(),
            message: message.into(),
        }
    }

    fn messages(lines: Vec<(usize, Entry)>) -> Vec<String> {
        lines
            .into_iter()
            .map(|(host, e)| format!("{host}:{}", e.message))
            .collect()
    }

    #[test]
    fn hosts_interleave_by_corrected_time_and_keep_their_own_order() {
        let now = Instant::now();
        let mut merge = Merge::new(2);
        // Host 1's clock runs 10 s ahead of this machine's.
        merge.set_offset(1, 10_000_000);
        for (at, m) in [(100, "a1"), (300, "a2"), (50, "a3 (clock stepped back)")] {
            merge.push(0, entry(at, m), now);
        }
        for (at, m) in [(10_000_200, "b1"), (10_000_400, "b2")] {
            merge.push(1, entry(at, m), now);
        }
        merge.end(0);
        merge.end(1);
        assert_eq!(
            messages(merge.drain()),
            ["0:a1", "1:b1", "0:a2", "0:a3 (clock stepped back)", "1:b2"]
        );
        assert!(merge.is_done());
    }

    #[test]
    fn a_line_waits_for_quiet_hosts_only_so_long() {
        let start = Instant::now();
        let mut merge = Merge::new(2);
        merge.push(0, entry(200, "a1"), start);
        assert!(
            merge.pop(start).is_none(),
            "host 1 may still send something earlier"
        );
        merge.push(1, entry(100, "b1"), start);
        assert_eq!(messages(merge.pop(start).into_iter().collect()), ["1:b1"]);
        assert!(merge.pop(start).is_none());
        assert_eq!(merge.deadline(), Some(start + HOLD));
        assert_eq!(
            messages(merge.pop(start + HOLD).into_iter().collect()),
            ["0:a1"]
        );
        merge.push(0, entry(300, "a2"), start);
        merge.end(1);
        assert_eq!(messages(merge.pop(start).into_iter().collect()), ["0:a2"]);
    }
}
