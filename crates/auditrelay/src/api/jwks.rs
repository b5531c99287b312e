//! `GET /v2/audit-log-webhook/jwks.json`: the public keys that verify delivered lines and
//! pull-API entries (DECISIONS.md K3.4, DECISIONS.md D6).
//!
//! It is public, as Konnect documents it with no authentication: a SIEM or `auditrelay verify`
//! fetches it with no token. It lists every key still published, the pending one of a rotation
//! included, so a verifier that refreshes it at least every activation delay never meets a
//! line signed by a key it has not seen. The short `max-age` keeps caches within that.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::clock;
use crate::state::AppState;

/// Get the audit log signing keys.
#[utoipa::path(
    get, path = "/v2/audit-log-webhook/jwks.json", tag = "Audit Logs",
    operation_id = "get-audit-log-jwks",
    description = "Returns the public keys used to sign audit log entries, to verify them. No authentication.",
    responses((
        status = 200,
        description = "The published keys: `kty` OKP, `alg` EdDSA, `crv` Ed25519, `kid` the hex SHA-1 of the raw key, `x` the raw key in base64url",
        content_type = "application/json",
        body = Object,
        example = json!({"keys": [{"kty": "OKP", "alg": "EdDSA", "kid": "3f60bc4376c937154f3c004ebd180433ac0d03e6",
            "crv": "Ed25519", "x": "XWxGtApfcqmKI7p0OKnF5JSEWMVoLsytFXLEP7xZ_l8"}]}),
    )),
)]
pub async fn get_jwks(State(state): State<AppState>) -> impl IntoResponse {
    let keys = state.keys.snapshot().await;
    let published = keys.published_at(clock::now(), state.config.retention.window);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        auditrelay_core::signing::render_jwks(&published),
    )
}
