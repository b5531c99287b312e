//! Cursor pagination as Konnect does it for collections: `page[size]`, `page[after]`,
//! `page[before]`, and a flat `meta {next, previous, size}` whose links carry the cursor.
//!
//! Cursors are opaque to clients: base64url of the last item's sort key, so a page boundary
//! stays put when items are added or removed before it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use super::error::{ApiError, InvalidParameter};
use crate::store::{PageQuery, Seek, SortKey as Key};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u32,
    pub direction: Seek,
}

impl PageRequest {
    /// The store query: one item more than the page, to learn whether more lie beyond.
    pub fn query(&self) -> PageQuery {
        PageQuery {
            seek: self.direction.clone(),
            limit: self.size + 1,
        }
    }
}

/// Konnect's flat collection meta.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorMeta {
    /// Link to the next page; `null` on the last page.
    pub next: Option<String>,
    /// Link to the previous page; `null` on the first page.
    pub previous: Option<String>,
    pub size: u32,
}

/// An opaque cursor for any sort key: base64url of the key as compact JSON.
pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("a sort key serializes"))
}

/// The key inside a cursor from [`encode_cursor`]; `None` for anything else.
///
/// A key holding a NUL (`\u0000`, the only way JSON writes one) is never ours: no name, id
/// or time we sort by holds one. Taken, it would reach PostgreSQL, which refuses a NUL in
/// text, and the client's mistake would be answered as our fault.
pub fn decode_cursor<K: DeserializeOwned>(cursor: &str) -> Option<K> {
    let json = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    if json.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    serde_json::from_slice(&json).ok()
}

/// How a list answers pagination parameters it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// 400 naming the parameter: for our own lists, and Konnect's that document a 400.
    Refuse,
    /// Konnect's lists whose documented answers are only 200, 401 and 403 (destinations), where
    /// an SDK reports anything else as an "unknown status code": `page[size]` is clamped into
    /// range (an unreadable one is the default), a cursor that is not ours reads as past the end
    /// (an empty page with no `next`, so a client walking the list stops rather than starting
    /// over), and unknown `page[…]` keys are ignored.
    Accommodate,
}

/// Reads `page[size]`, `page[after]` and `page[before]` from a raw query string.
pub fn parse(
    query: Option<&str>,
    default_size: u32,
    max_size: u32,
) -> Result<PageRequest, ApiError> {
    parse_with(query, default_size, max_size, Strictness::Refuse)
}

/// [`parse`], answering what it cannot use as `strictness` says.
pub fn parse_with(
    query: Option<&str>,
    default_size: u32,
    max_size: u32,
    strictness: Strictness,
) -> Result<PageRequest, ApiError> {
    let accommodate = strictness == Strictness::Accommodate;
    // Past every item in either direction: what an unusable cursor reads as when accommodating.
    let past_the_end = || (i64::MAX, "\u{10ffff}".to_owned());
    let before_the_start = || (i64::MIN, String::new());
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query.unwrap_or_default()) {
        Ok(pairs) => pairs,
        Err(_) if accommodate => Vec::new(),
        Err(_) => {
            return Err(ApiError::invalid(
                "Invalid query string",
                InvalidParameter::new("query", None, "is not URL-encoded"),
            ));
        }
    };
    let bad = |field: &str, rule, reason: String| {
        ApiError::invalid(
            "Invalid pagination parameter",
            InvalidParameter::new(field, Some(rule), reason).with_source("query"),
        )
    };
    let mut size = default_size;
    let mut after = None;
    let mut before = None;
    for (key, value) in pairs {
        match key.as_str() {
            "page[size]" if accommodate => {
                size = match value.parse::<u64>() {
                    Ok(0) | Err(_) => default_size,
                    Ok(n) => n.min(u64::from(max_size)) as u32,
                };
            }
            "page[after]" if accommodate => {
                after = Some(decode_cursor::<Key>(&value).unwrap_or_else(past_the_end));
            }
            "page[before]" if accommodate => {
                before = Some(decode_cursor::<Key>(&value).unwrap_or_else(before_the_start));
            }
            other if accommodate && other.starts_with("page[") => {}
            "page[size]" => {
                size = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max_size).contains(n))
                    .ok_or_else(|| {
                        bad(
                            "page[size]",
                            "invalid",
                            format!("must be an integer from 1 to {max_size}"),
                        )
                    })?;
            }
            "page[after]" => {
                after = Some(decode_cursor::<Key>(&value).ok_or_else(|| {
                    bad(
                        "page[after]",
                        "invalid",
                        "is not a cursor from a previous page".into(),
                    )
                })?);
            }
            "page[before]" => {
                before = Some(decode_cursor::<Key>(&value).ok_or_else(|| {
                    bad(
                        "page[before]",
                        "invalid",
                        "is not a cursor from a previous page".into(),
                    )
                })?);
            }
            other if other.starts_with("page[") => {
                return Err(bad(
                    other,
                    "unknown_property",
                    "is not a pagination parameter (use page[size], page[after] or page[before])"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    let direction = match (after, before) {
        (Some(after), Some(_)) if accommodate => Seek::Forward(Some(after)),
        (Some(_), Some(_)) => {
            return Err(bad(
                "page[before]",
                "invalid",
                "cannot be combined with page[after]".into(),
            ));
        }
        (after, None) => Seek::Forward(after),
        (None, Some(before)) => Seek::Backward(before),
    };
    Ok(PageRequest { size, direction })
}

/// Builds the meta of a page. `items` holds up to `size + 1` items in list order, fetched
/// in the request's direction, so the extra one tells whether more lie beyond.
pub fn finish<T>(
    mut items: Vec<T>,
    page: &PageRequest,
    path: &str,
    key: impl Fn(&T) -> Key,
) -> (Vec<T>, CursorMeta) {
    let size = page.size as usize;
    let more = items.len() > size;
    if more {
        match page.direction {
            // Forward reads come in ascending order: the extra one is last.
            Seek::Forward(_) => items.truncate(size),
            // Backward reads were reversed into list order: the extra one is first.
            Seek::Backward(_) => {
                items.remove(0);
            }
        }
    }
    let link = |param: &str, k: Key| {
        format!(
            "{path}?page%5B{param}%5D={}&page%5Bsize%5D={}",
            encode_cursor(&k),
            page.size
        )
    };
    let (has_next, has_previous) = match page.direction {
        Seek::Forward(ref after) => (more, after.is_some()),
        Seek::Backward(_) => (true, more),
    };
    let next = items
        .last()
        .filter(|_| has_next)
        .map(|last| link("after", key(last)));
    let previous = items
        .first()
        .filter(|_| has_previous)
        .map(|first| link("before", key(first)));
    (
        items,
        CursorMeta {
            next,
            previous,
            size: page.size,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accommodating_lists_answer_every_page_request() {
        let lenient = |q: &str| parse_with(Some(q), 10, 100, Strictness::Accommodate).unwrap();
        assert_eq!(lenient("page[size]=1000").size, 100);
        assert_eq!(lenient("page[size]=0").size, 10);
        assert_eq!(lenient("page[size]=-3").size, 10);
        assert_eq!(lenient("page[size]=x").size, 10);
        assert_eq!(lenient("page[size]=99999999999999").size, 100);
        assert_eq!(lenient("page[size]=7").size, 7);
        // A cursor that is not ours is past the end: the page is empty and the walk stops.
        assert_eq!(
            lenient("page[after]=not-a-cursor").direction,
            Seek::Forward(Some((i64::MAX, "\u{10ffff}".to_owned())))
        );
        assert_eq!(
            lenient("page[before]=zz").direction,
            Seek::Backward((i64::MIN, String::new()))
        );
        assert_eq!(lenient("page[number]=2&%zz").size, 10);
        // The same requests are refused by a strict list.
        for q in [
            "page[size]=1000",
            "page[after]=not-a-cursor",
            "page[number]=2",
        ] {
            assert!(parse(Some(q), 10, 100).is_err(), "{q}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let key = (
            1_700_000_000_000_i64,
            "3e551b39-227d-4297-b911-e68fd5d77c17".to_owned(),
        );
        assert_eq!(decode_cursor(&encode_cursor(&key)), Some(key));
        assert_eq!(decode_cursor::<Key>("not a cursor"), None);
    }

    #[test]
    fn parses_page_parameters() {
        let p = parse(Some("page%5Bsize%5D=5&filter%5Bname%5D=x"), 10, 100).unwrap();
        assert_eq!(
            p,
            PageRequest {
                size: 5,
                direction: Seek::Forward(None)
            }
        );
        assert_eq!(parse(None, 10, 100).unwrap().size, 10);
        for bad in [
            "page[size]=0",
            "page[size]=101",
            "page[size]=x",
            "page[after]=zz",
            "page[number]=2",
        ] {
            assert!(parse(Some(bad), 10, 100).is_err(), "{bad}");
        }
        let c = encode_cursor(&(1_i64, "a"));
        assert!(parse(Some(&format!("page[after]={c}&page[before]={c}")), 10, 100).is_err());
    }

    #[test]
    fn meta_links() {
        let key = |n: &i64| (*n, n.to_string());
        let first = PageRequest {
            size: 2,
            direction: Seek::Forward(None),
        };
        let (items, meta) = finish(vec![1, 2, 3], &first, "/v3/portals", key);
        assert_eq!(items, [1, 2]);
        assert!(
            meta.next
                .as_deref()
                .unwrap()
                .starts_with("/v3/portals?page%5Bafter%5D=")
        );
        assert!(meta.previous.is_none());

        let last = PageRequest {
            size: 2,
            direction: Seek::Forward(Some(key(&2))),
        };
        let (items, meta) = finish(vec![3], &last, "/p", key);
        assert_eq!(items, [3]);
        assert!(meta.next.is_none() && meta.previous.is_some());

        let back = PageRequest {
            size: 2,
            direction: Seek::Backward(key(&4)),
        };
        let (items, meta) = finish(vec![1, 2, 3], &back, "/p", key);
        assert_eq!(items, [2, 3]);
        assert!(meta.next.is_some() && meta.previous.is_some());
    }
}
