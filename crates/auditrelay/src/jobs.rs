//! Background jobs that run beside the API inside `auditrelay serve`.

pub mod integrity;
pub mod retention;
