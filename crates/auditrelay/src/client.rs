//! The project's one client for its own API, over HTTP: what the CLI's commands (`emit`,
//! `replay`, `verify`, `listen`), the load tool and the tests' helpers use to talk to a running
//! server. [`wire`] holds the API's answers as clients read them, which the web UI's in-process
//! calls read too.
//!
//! [`ApiClient`] sends each request with the token and turns a transport failure into a message
//! a new user can act on; typed calls ([`ApiClient::get`], [`ApiClient::send_json`]) read a 2xx
//! answer into a wire type and hand any other answer back as a [`Refused`].

pub mod wire;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use auditrelay_core::signing::parse_jwks;
use auditrelay_core::{PublicKey, Region};
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The server commands talk to unless `--url` or `$AUDITRELAY_URL` names another.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// The JWKS path under a server's base URL.
pub const JWKS_PATH: &str = "/v2/audit-log-webhook/jwks.json";
/// The checkpoint key's path under a server's base URL.
pub const CHECKPOINT_KEY_PATH: &str = "/v3/audit-log-integrity/checkpoint-key";

/// An API token, kept out of `Debug` output so that printing the arguments cannot leak it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// The token itself, for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Token {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A token pasted from a file or a terminal often brings a newline along.
        let token = s.trim();
        if token.is_empty() {
            return Err("the token is empty");
        }
        Ok(Self(token.to_owned()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A running server's API: the base URL, the token, and one HTTP client for every request of
/// the run.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Token,
    timeout: Duration,
}

impl ApiClient {
    /// `user_agent` tells the command's own requests apart in the server's self-audit events.
    pub fn new(
        url: &str,
        token: Token,
        user_agent: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--url {url} must be an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(user_agent)
            .build()
            .context("Failed to set up the HTTP client")?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            token,
            timeout,
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` under the base URL, behind the region's prefix when one is given.
    pub fn url(&self, region: Option<&Region>, path: &str) -> String {
        match region {
            Some(region) => format!("{}/{region}{path}", self.base),
            None => format!("{}{path}", self.base),
        }
    }

    /// Sends a request with the token; `what` names it in errors. Returns the status and body
    /// of any answer; an error means no answer came (the server is unreachable or too slow).
    pub async fn send(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let result = request.bearer_auth(self.token.expose()).send().await;
        let response = result.map_err(|e| self.unreachable(e, what))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(e, what))?;
        Ok((status, body))
    }

    /// A transport failure as a message a new user can act on.
    fn unreachable(&self, e: reqwest::Error, what: &str) -> anyhow::Error {
        let cause = root_cause(&e);
        if e.is_connect() {
            anyhow!(
                "Could not connect to auditrelay at {} ({cause}). Is it running? Start it with `auditrelay serve`, or point --url (or $AUDITRELAY_URL) at it.",
                self.base
            )
        } else if e.is_timeout() {
            anyhow!(
                "{} did not answer {what} within {}s",
                self.base,
                self.timeout.as_secs()
            )
        } else {
            anyhow!("Failed to send {what} to {}: {cause}", self.base)
        }
    }
}

/// An answer other than the success a typed call expected: its status and body, for the
/// caller to explain ([`Refused::problem`] reads the problem+json, if that is what it is).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Refused {
    pub fn problem(&self) -> Option<wire::Problem> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Why a typed call gave no value: no answer at all, or an answer that was not a success.
#[derive(Debug)]
pub enum CallError {
    /// No answer came, or it could not be read as the wire type: the message says which.
    Failed(anyhow::Error),
    Refused(Refused),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "{e:#}"),
            Self::Refused(refused) => {
                write!(f, "HTTP {}", refused.status)?;
                match refused.problem().filter(|p| !p.detail.is_empty()) {
                    Some(problem) => write!(f, ": {}", problem.detail),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for CallError {}

impl ApiClient {
    /// `GET path` (under the region's prefix, if one is given), read as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        region: Option<&Region>,
        path: &str,
        what: &str,
    ) -> Result<T, CallError> {
        let request = self.http.get(self.url(region, path));
        self.typed(request, what).await
    }

    /// A request with a JSON body, its 2xx answer read as `T`.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        region: Option<&Region>,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<T, CallError> {
        let request = self.http.request(method, self.url(region, path)).json(body);
        self.typed(request, what).await
    }

    /// Creates a destination and binds the org webhook of `region` to it, enabled: what a new
    /// installation's first delivery needs. Returns the destination.
    pub async fn bind_new_destination(
        &self,
        region: &Region,
        destination: &Value,
    ) -> Result<wire::Destination, CallError> {
        let created: wire::Destination = self
            .send_json(
                Method::POST,
                None,
                "/v3/audit-log-destinations",
                destination,
                "the destination's creation",
            )
            .await?;
        let binding = serde_json::json!({
            "audit_log_destination_id": created.id,
            "enabled": true,
        });
        let _: wire::Webhook = self
            .send_json(
                Method::PATCH,
                Some(region),
                "/v3/audit-log-webhook",
                &binding,
                "the webhook's binding",
            )
            .await?;
        Ok(created)
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> Result<T, CallError> {
        let (status, body) = self.send(request, what).await.map_err(CallError::Failed)?;
        if !status.is_success() {
            return Err(CallError::Refused(Refused { status, body }));
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("The answer to {what} is not what the API documents"))
            .map_err(CallError::Failed)
    }
}

/// The checkpoint key's name and public key from `source`: a verifier key itself, a file
/// holding one (or the API's JSON), or a URL serving the API's JSON.
pub async fn load_checkpoint_key(source: &str) -> anyhow::Result<(String, PublicKey)> {
    use auditrelay_core::checkpoint::parse_verifier_key;
    if let Ok(key) = parse_verifier_key(source) {
        return Ok(key);
    }
    let document = read_source(source, "the checkpoint key").await?;
    let document = String::from_utf8(document)
        .with_context(|| format!("Bad checkpoint key from {source}: not UTF-8"))?;
    let text = match serde_json::from_str::<serde_json::Value>(&document) {
        Ok(json) => json["verifier_key"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{source} has no `verifier_key`"))?,
        Err(_) => document,
    };
    parse_verifier_key(&text).with_context(|| format!("Bad checkpoint key from {source}"))
}

/// The keys of a JWKS at a URL (`http://`, `https://`) or in a file (`verify` and `listen`).
pub async fn load_jwks(source: &str) -> anyhow::Result<Vec<PublicKey>> {
    let document = read_source(source, "the JWKS").await?;
    let keys = parse_jwks(&document).with_context(|| format!("Bad JWKS from {source}"))?;
    if keys.is_empty() {
        bail!("The JWKS from {source} holds no Ed25519 key");
    }
    Ok(keys)
}

/// The document at `source`: fetched from a URL (`http://`, `https://`), else read from a file;
/// `what` names it in errors.
async fn read_source(source: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return std::fs::read(source)
            .with_context(|| format!("Failed to read {what} file {source}"));
    }
    let response = reqwest::Client::new()
        .get(source)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("Failed to fetch {what} from {source}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("Failed to fetch {what} from {source}: HTTP {status}");
    }
    Ok(response
        .bytes()
        .await
        .with_context(|| format!("Failed to read {what} from {source}"))?
        .to_vec())
}

/// The innermost cause of an error ("Connection refused (os error 111)"), the part a user
/// can act on; reqwest's outer layers only repeat that a request failed.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let token: Token = " kpat_secret\n".parse().unwrap();
        assert_eq!(token.expose(), "kpat_secret");
        assert!(!format!("{token:?}").contains("secret"));
        assert!("  ".parse::<Token>().is_err());
    }
}
