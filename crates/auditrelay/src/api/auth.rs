//! Authentication (`Authorization: Bearer <token>`) and permission checks, each self-audited.
//!
//! A handler takes a [`Caller`] argument to require a valid token; it then names the permission
//! each action needs with [`Caller::authorize`], which records the `Authz.<resource>` event
//! whether or not the check passes.

use std::sync::Arc;

use auditrelay_core::{AuthenticationOutcome, AuthenticationType, Permission};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::audit::Actor;
use super::context::RequestContext;
use super::error::ApiError;
use crate::clock;
use crate::state::AppState;
use crate::store::Principal;
use auditrelay_core::token;

/// An authenticated request: who is calling, and the request's context.
pub struct Caller {
    pub principal: Principal,
    pub ctx: Arc<RequestContext>,
}

impl Caller {
    /// Checks one permission for an action on a resource (`Authz.<resource>`, `action`),
    /// recording the authorization event; 403 when it is not granted.
    pub fn authorize(
        &self,
        permission: Permission,
        resource: &str,
        action: &str,
    ) -> Result<(), ApiError> {
        let granted = self.principal.grant.allows(permission);
        self.ctx
            .trail
            .record_authorization(&self.ctx.facts, resource, action, granted);
        if granted {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// The request context, which the outermost middleware always installs.
pub fn context(parts: &Parts) -> Result<Arc<RequestContext>, ApiError> {
    parts
        .extensions
        .get::<Arc<RequestContext>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("the request context middleware is not installed"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ctx = context(parts)?;
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        let principal = authenticate(state, &ctx, header.and_then(bearer_token)).await?;
        Ok(Caller { principal, ctx })
    }
}

/// The token check of every request: the principal of a live token, or 401. The
/// authentication event is recorded on the request's trail whatever the outcome.
pub(super) async fn authenticate(
    state: &AppState,
    ctx: &RequestContext,
    secret: Option<&str>,
) -> Result<Principal, ApiError> {
    let fail = |kind: AuthenticationType, outcome: AuthenticationOutcome, actor: Option<Actor>| {
        ctx.trail
            .record_authentication(&ctx.facts, kind, outcome, actor);
        metrics::counter!("auditrelay_authentications_total", "outcome" => outcome.as_str())
            .increment(1);
        ApiError::unauthorized()
    };
    let Some(secret) = secret else {
        return Err(fail(
            AuthenticationType::Invalid,
            AuthenticationOutcome::Invalid,
            None,
        ));
    };
    let kind = token::authentication_type(secret);
    if kind == AuthenticationType::Invalid {
        return Err(fail(kind, AuthenticationOutcome::Invalid, None));
    }
    let Some(token) = state.store.find_token(&token::hash(secret)).await? else {
        return Err(fail(kind, AuthenticationOutcome::NotFound, None));
    };
    let actor = Some(Actor::from(&token.principal));
    if token.revoked_at.is_some() {
        return Err(fail(kind, AuthenticationOutcome::Disabled, actor));
    }
    if token.expires_at.is_some_and(|at| at <= clock::now()) {
        return Err(fail(kind, AuthenticationOutcome::TokenExpired, actor));
    }
    ctx.trail
        .record_authentication(&ctx.facts, kind, AuthenticationOutcome::Success, actor);
    metrics::counter!("auditrelay_authentications_total", "outcome" => "success").increment(1);
    Ok(token.principal)
}

/// `Bearer <token>`, the scheme case-insensitive as RFC 9110 says.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer kpat_x"), Some("kpat_x"));
        assert_eq!(bearer_token("bearer  kpat_x "), Some("kpat_x"));
        assert_eq!(bearer_token("Basic dXNlcg=="), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
