//! The UI's stylesheet, script and icon, embedded in the binary (no CDN, no build step).
//!
//! Each is served under a name carrying a hash of its content (`app-3f2a9c01de.css`), so it
//! can be cached for a year: a new build that changes a file changes its name too.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static [u8],
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "app",
            "css",
            "text/css; charset=utf-8",
            &include_bytes!("../../assets/app.css")[..],
        ),
        (
            "app",
            "js",
            "text/javascript; charset=utf-8",
            &include_bytes!("../../assets/app.js")[..],
        ),
        (
            "icon",
            "svg",
            "image/svg+xml",
            &include_bytes!("../../assets/icon.svg")[..],
        ),
    ]
    .into_iter()
    .map(|(stem, ext, content_type, body)| {
        let hash = hex::encode(&Sha256::digest(body)[..5]);
        Asset {
            name: format!("{stem}-{hash}.{ext}"),
            content_type,
            body,
        }
    })
    .collect()
});

/// Where the pages link their assets.
pub struct Hrefs {
    pub css: String,
    pub js: String,
    pub icon: String,
}

static HREFS: LazyLock<Hrefs> = LazyLock::new(|| {
    let href = |i: usize| format!("/ui/assets/{}", ASSETS[i].name);
    Hrefs {
        css: href(0),
        js: href(1),
        icon: href(2),
    }
});

pub fn hrefs() -> &'static Hrefs {
    &HREFS
}

/// `GET /ui/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return super::views::error_page(
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no file at this address.",
        );
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
