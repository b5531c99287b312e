//! Multi-row `INSERT`s: many rows per statement, from a handful of distinct statements.
//!
//! Every statement is a round trip to sqlx's worker thread (a message, a wake-up, an answer),
//! and under ingest whatever the writer does next (a delivery lane's position, the next
//! request's commit) waits for all of a commit's round trips. So rows go in runs of
//! [`MAX_RUN`], and what is left over in one run per power of two it needs: a commit of any
//! size takes at most `len / MAX_RUN + 9` statements, and only ten distinct texts, each
//! prepared once and cached by the connection.

use std::ops::Range;
use std::sync::OnceLock;

/// Rows in the longest run: 2,048 bound values for an event's four columns, 4,096 for a log
/// chunk's eight, far below SQLite's limit of 32,766. Under ingest, the writer's round trips
/// are what a delivery lane's position waits behind: 512 rather than 128 takes a group commit
/// of 3,000 events from about 30 of them to 15.
pub(super) const MAX_RUN: usize = 512;

/// The run lengths: `MAX_RUN` and each smaller power of two.
const LENGTHS: usize = MAX_RUN.trailing_zeros() as usize + 1;

/// An `INSERT … VALUES (…), (…) …` with any power-of-two number of rows up to [`MAX_RUN`].
pub(super) struct MultiRow {
    /// Up to and including `VALUES`.
    head: &'static str,
    /// One row's placeholders, anonymous (`(?, ?, ?)`): they are bound in order.
    row: &'static str,
    /// After the rows (an `ON CONFLICT` clause), or empty.
    tail: &'static str,
    /// The statement for `1 << i` rows, written when first used.
    texts: [OnceLock<String>; LENGTHS],
}

impl MultiRow {
    pub(super) const fn new(head: &'static str, row: &'static str, tail: &'static str) -> Self {
        Self {
            head,
            row,
            tail,
            texts: [const { OnceLock::new() }; LENGTHS],
        }
    }

    /// The statement for `rows` rows, a length [`runs`] gives.
    pub(super) fn sql(&self, rows: usize) -> &str {
        assert!(
            rows.is_power_of_two() && rows <= MAX_RUN,
            "a run of {rows} rows"
        );
        self.texts[rows.trailing_zeros() as usize].get_or_init(|| {
            let rows = vec![self.row; rows].join(", ");
            format!("{} {rows} {}", self.head, self.tail)
        })
    }
}

/// `0..len` cut into runs, in order: as many of [`MAX_RUN`] as fit, then the rest from the
/// longest power of two down.
pub(super) fn runs(len: usize) -> impl Iterator<Item = Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = len - start;
        if left == 0 {
            return None;
        }
        let run = MAX_RUN.min(1 << left.ilog2());
        start += run;
        Some(start - run..start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_row_once_in_order_with_few_statements() {
        for len in 0..=3 * MAX_RUN + 1 {
            let runs: Vec<_> = runs(len).collect();
            let covered: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(covered, (0..len).collect::<Vec<_>>(), "{len} rows");
            assert!(
                runs.iter()
                    .all(|r| r.len().is_power_of_two() && r.len() <= MAX_RUN)
            );
            let rest = len % MAX_RUN;
            assert_eq!(
                runs.len(),
                len / MAX_RUN + rest.count_ones() as usize,
                "{len} rows take one statement per run of {MAX_RUN} and per bit of the rest"
            );
        }
    }

    #[test]
    fn a_statement_has_one_row_of_placeholders_per_row() {
        static INSERT: MultiRow = MultiRow::new("INSERT INTO t (a, b) VALUES", "(?, ?)", "");
        assert_eq!(INSERT.sql(1).trim(), "INSERT INTO t (a, b) VALUES (?, ?)");
        assert_eq!(INSERT.sql(4).matches("(?, ?)").count(), 4);
        assert_eq!(INSERT.sql(MAX_RUN).matches('?').count(), 2 * MAX_RUN);
    }
}
