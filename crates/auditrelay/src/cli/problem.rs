//! A refusal from the server, told the way every client command tells it: the context, the
//! status, the problem's detail, one line per invalid parameter, a hint, and the trace id.

use std::fmt::Write as _;

use anyhow::anyhow;
use reqwest::StatusCode;

use crate::client::wire;

/// A non-2xx answer as a readable error: `context`, the status, the problem's detail, one line
/// per invalid parameter, a hint, and the trace id. `hint` is the command's own advice for this
/// status; without one, a 401 gets the advice every command shares.
pub fn refused(
    context: &str,
    status: StatusCode,
    body: &[u8],
    hint: Option<&str>,
) -> anyhow::Error {
    let problem: Option<wire::Problem> = serde_json::from_slice(body).ok();
    let mut message = format!("{context}: HTTP {status}");
    match problem
        .as_ref()
        .map(|p| p.detail.as_str())
        .filter(|d| !d.is_empty())
    {
        Some(detail) => {
            message.push_str(": ");
            message.push_str(detail);
        }
        None => {
            // Not problem+json (a proxy, say): show the start of whatever came back.
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if !text.is_empty() {
                let short: String = text.chars().take(300).collect();
                message.push_str(": ");
                message.push_str(&short);
            }
        }
    }
    let problem = problem.unwrap_or_default();
    for p in &problem.invalid_parameters {
        let at = p
            .source
            .as_deref()
            .map(|s| format!("{s}: "))
            .unwrap_or_default();
        let field = Some(p.field.as_str())
            .filter(|f| !f.is_empty())
            .unwrap_or("?");
        let reason = Some(p.reason.as_str())
            .filter(|r| !r.is_empty())
            .unwrap_or("is invalid");
        let rule = p
            .rule
            .as_deref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default();
        let _ = write!(message, "\n  {at}{field} {reason}{rule}");
    }
    let hint = hint.or_else(|| {
        (status == StatusCode::UNAUTHORIZED).then_some(
            "The token was not accepted: pass the one `auditrelay serve` printed on first start, or one from `auditrelay token create`, with --token or $AUDITRELAY_TOKEN.",
        )
    });
    if let Some(hint) = hint {
        message.push_str("\n  ");
        message.push_str(hint);
    }
    if !problem.instance.is_empty() {
        let instance = &problem.instance;
        let _ = write!(message, "\n  (server log and audit trail: {instance})");
    }
    anyhow!(message)
}
