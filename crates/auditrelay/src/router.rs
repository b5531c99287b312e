//! The whole HTTP service, composed: the web UI's routes (`/`, `/ui/…`) first, the API behind
//! them. Neither knows the other's router; the UI gets the API as a service to call in process.

use axum::Router;

use crate::config::Config;
use crate::state::{AppState, Services};
use crate::{api, ui};

/// The complete HTTP service, and the state its handlers share.
pub fn service(config: Config, services: Services) -> (Router, AppState) {
    let (routes, document) = api::routes();
    let openapi_json = document.to_json().expect("the OpenAPI document serializes");
    let state = AppState::new(config, services, openapi_json);
    let api = api::service(routes, &state);
    // The web UI's routes match first, outside the API's middleware: a UI page is not an API
    // call (no problem+json, no region prefix), and each API call the UI makes on its user's
    // behalf goes through `api` in process, middleware and all.
    let app = ui::router(state.clone(), api.clone()).fallback_service(api);
    (app, state)
}
