//! Which region a request addresses: a `/{region}` path prefix (`/eu/v2/audit-log-webhook`),
//! else the first label of the `Host` header (`eu.audit.example.com`), else the default region.
//! A Konnect region this installation does not serve is a 404 either way: falling back to the
//! default region would send an update meant for `au` to the `us` webhook.
//!
//! The prefix is stripped before routing, so every route is written once, unprefixed.

use auditrelay_core::Region;

use crate::config::RegionsConfig;

/// The region a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRegion {
    One(Region),
    /// Konnect's `global` host: every region at once.
    Global,
}

/// How to route a request.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub region: RequestRegion,
    /// The path to route when a region prefix was stripped.
    pub routed_path: Option<String>,
}

/// Resolves the region, or returns the unknown region the path named.
pub fn resolve(
    path: &str,
    host: Option<&str>,
    regions: &RegionsConfig,
) -> Result<Resolved, String> {
    if let Some((first, rest)) = split_prefix(path) {
        if first == Region::GLOBAL {
            return Ok(Resolved {
                region: RequestRegion::Global,
                routed_path: Some(rest.to_owned()),
            });
        }
        if let Some(region) = regions.get(first) {
            return Ok(Resolved {
                region: RequestRegion::One(region.clone()),
                routed_path: Some(rest.to_owned()),
            });
        }
        // `/xx/v2/...` can only be a region prefix: none of our own paths has that shape.
        if Region::parse(first).is_some() && is_versioned(rest) {
            return Err(first.to_owned());
        }
    }
    // Host names are case-insensitive: `EU.api.example.com` is `eu`.
    let label = host
        .and_then(|h| h.split([':', '.']).next())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let label = label.as_str();
    let region = if label == Region::GLOBAL {
        RequestRegion::Global
    } else if let Some(region) = regions.get(label) {
        RequestRegion::One(region.clone())
    } else if KONNECT_REGIONS.contains(&label) {
        return Err(label.to_owned());
    } else {
        // Not a region's name (`audit.example.com`, `localhost`, an address).
        RequestRegion::One(regions.default_region().clone())
    };
    Ok(Resolved {
        region,
        routed_path: None,
    })
}

/// The names Konnect gives its regions (`ap` in the Dev Portal's documents): a `Host` that
/// starts with one of them names that region, served here or not.
pub const KONNECT_REGIONS: [&str; 7] = ["us", "eu", "au", "me", "in", "sg", "ap"];

/// `/eu/v2/x` → `("eu", "/v2/x")`.
fn split_prefix(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.strip_prefix('/')?;
    let slash = trimmed.find('/')?;
    Some((&trimmed[..slash], &trimmed[slash..]))
}

fn is_versioned(rest: &str) -> bool {
    ["/v1/", "/v2/", "/v3/"].iter().any(|v| rest.starts_with(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> RegionsConfig {
        RegionsConfig {
            list: ["us", "eu"].map(|r| Region::parse(r).unwrap()).to_vec(),
        }
    }

    #[track_caller]
    fn check(path: &str, host: Option<&str>, expect: Result<(&str, Option<&str>), &str>) {
        let actual = resolve(path, host, &regions()).map(|r| {
            let name = match r.region {
                RequestRegion::One(region) => region.as_str().to_owned(),
                RequestRegion::Global => "global".to_owned(),
            };
            (name, r.routed_path)
        });
        let expect = expect
            .map(|(r, p)| (r.to_owned(), p.map(str::to_owned)))
            .map_err(str::to_owned);
        assert_eq!(actual, expect, "{path} {host:?}");
    }

    #[test]
    fn prefix_host_and_default() {
        check("/v1/events", None, Ok(("us", None)));
        check("/eu/v1/events", None, Ok(("eu", Some("/v1/events"))));
        check(
            "/us/v2/audit-log-webhook/jwks.json",
            None,
            Ok(("us", Some("/v2/audit-log-webhook/jwks.json"))),
        );
        check(
            "/global/v3/audit-log-destinations",
            None,
            Ok(("global", Some("/v3/audit-log-destinations"))),
        );
        check("/v1/events", Some("eu.audit.example.com"), Ok(("eu", None)));
        check("/v1/events", Some("eu:8080"), Ok(("eu", None)));
        check(
            "/v1/events",
            Some("global.api.example.com"),
            Ok(("global", None)),
        );
        check("/v1/events", Some("localhost:8080"), Ok(("us", None)));
        check(
            "/us/v1/events",
            Some("eu.example.com"),
            Ok(("us", Some("/v1/events"))),
        );
        check("/ap/v2/audit-log-webhook", None, Err("ap"));
        // A Konnect region this server does not serve is a 404 by Host too, never the default.
        check(
            "/v2/audit-log-webhook",
            Some("au.api.konghq.com"),
            Err("au"),
        );
        check("/v1/events", Some("SG.example.com:443"), Err("sg"));
        check("/v1/events", Some("EU.example.com"), Ok(("eu", None)));
        check("/v1/events", Some("audit.example.com"), Ok(("us", None)));
        check("/v1/events", Some("127.0.0.1:8080"), Ok(("us", None)));
        check("/healthz", None, Ok(("us", None)));
        check("/v3/portals/abc", None, Ok(("us", None)));
        check("/static/app.css", None, Ok(("us", None)));
    }
}
