//! The request's trace id: made by the context middleware, carried in a task-local while the
//! request is served, and read by whatever renders a problem (its `instance`), so that an error
//! needs no handle on the request to name it.

tokio::task_local! {
    static TRACE_ID: u64;
}

/// Konnect's trace ids are unsigned 64-bit decimals.
pub fn new_trace_id() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    // Keep within i64 so every consumer (JSON numbers, SQL integers) reads it exactly.
    u64::from_le_bytes(bytes) >> 1
}

/// Runs `f` as if serving the request `trace_id` (for problems made outside a request).
pub fn with_trace_id<T>(trace_id: u64, f: impl FnOnce() -> T) -> T {
    TRACE_ID.sync_scope(trace_id, f)
}

/// Serves `future` as the request `trace_id`.
pub async fn serving<F: Future>(trace_id: u64, future: F) -> F::Output {
    TRACE_ID.scope(trace_id, future).await
}

/// The trace id of the request being served on this task, if any.
pub fn current_trace_id() -> Option<u64> {
    TRACE_ID.try_with(|id| *id).ok()
}
