//! The list query of `GET async_status`: filters, ordering and paging as Traffic Ops list
//! endpoints take them, read into [`ListParams`] and validated into a [`ListQuery`], and the
//! keyset cursor (`cursor`, given back as `summary.next`) that pages at the same cost at any
//! depth.
//!
//! A cursor is the query's filters and order with the sort key of the last job of a page, as
//! `1|<orderby>|<sortOrder>|<status>|<id>|<time>|<last id>` in URL-safe base64. It is opaque to
//! clients but not secret: whoever may list may read any page, so a hand-made cursor gains
//! nothing; it is only checked to be one this service could have made.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::job::{AsyncStatus, JobStatus};

/// Column to order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    #[default]
    Id,
    StartTime,
    EndTime,
    LastUpdated,
}

/// Direction of the ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

/// The list parameters as given. Unknown names are ignored, as Traffic Ops does; the derive
/// refuses a known name given twice. Integers parse as Go's `strconv.Atoi` does (see
/// [`parse_int`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ListParams {
    pub status: Option<JobStatus>,
    pub id: Option<i64>,
    pub orderby: Option<OrderBy>,
    #[serde(rename = "sortOrder")]
    pub sort_order: Option<SortOrder>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub page: Option<i64>,
    pub cursor: Option<String>,
    pub kind: Option<String>,
    pub created_by: Option<String>,
    #[serde(rename = "newerThan")]
    pub newer_than: Option<String>,
    #[serde(rename = "olderThan")]
    pub older_than: Option<String>,
    /// Every `label=key:value` given (the parameter may repeat, so the caller collects it).
    #[serde(skip)]
    pub label: Vec<String>,
}

/// Where a cursor page starts: after the job with this sort key, in the query's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    /// The last job's `start_time` (`orderby=start_time`) or `end_time` (`orderby=end_time`;
    /// `None` for an unfinished job); `None` for `orderby=id`.
    pub time: Option<DateTime<Utc>>,
    /// The last job's id.
    pub id: i64,
}

/// A validated list query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub status: Option<JobStatus>,
    pub id: Option<i64>,
    pub order_by: OrderBy,
    pub sort_order: SortOrder,
    /// Maximum rows to return; `None` returns all.
    pub limit: Option<i64>,
    /// Rows to skip before the first returned.
    pub offset: i64,
    /// With a cursor: only the jobs after this one (and `offset` is 0).
    pub after: Option<After>,
    pub kind: Option<String>,
    pub created_by: Option<String>,
    /// Every pair must be among the job's labels.
    pub labels: Vec<(String, String)>,
    /// Only jobs started after this time.
    pub newer_than: Option<DateTime<Utc>>,
    /// Only jobs started before this time.
    pub older_than: Option<DateTime<Utc>>,
}

impl ListQuery {
    /// True when a filter beyond `status` and `id` is given: such a query's count is made by
    /// counting its rows (in an index), not from the status counters.
    pub fn has_row_filters(&self) -> bool {
        self.kind.is_some()
            || self.created_by.is_some()
            || !self.labels.is_empty()
            || self.newer_than.is_some()
            || self.older_than.is_some()
    }
}

/// A query parameter that cannot be used; the text names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ListQueryError(pub String);

/// What each list parameter must be.
const RULES: [(&str, &str); 13] = [
    ("status", "one of PENDING, SUCCEEDED, FAILED"),
    ("id", "an integer"),
    ("orderby", "one of id, start_time, end_time, last_updated"),
    ("sortOrder", "'asc' or 'desc'"),
    ("limit", "a positive integer or -1"),
    ("offset", "a non-negative integer"),
    ("page", "a positive integer"),
    ("cursor", "the summary.next of an earlier answer"),
    ("kind", "1 to 64 characters of a-z, 0-9, '.', '_' or '-'"),
    ("created_by", "a username of 1 to 128 characters"),
    ("label", "key:value, the key 1 to 64 characters of letters, digits, '.', '_', '/' or '-', the value at most 256 characters (at most 16 labels)"),
    ("newerThan", "an RFC 3339 time such as 2021-02-18T17:13:56Z"),
    ("olderThan", "an RFC 3339 time such as 2021-02-18T17:13:56Z"),
];

impl ListQueryError {
    /// The list parameter `name` has a value it cannot take; `None` when `name` is not one.
    pub fn bad_value(name: &str) -> Option<Self> {
        RULES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(known, rule)| {
                ListQueryError(format!("query parameter '{known}' must be {rule}"))
            })
    }

    /// The list parameter `name` is given more than once.
    pub fn given_twice(name: &str) -> Self {
        ListQueryError(format!(
            "query parameter '{name}' must be given at most once"
        ))
    }

    fn invalid(name: &str) -> Self {
        Self::bad_value(name)
            .unwrap_or_else(|| ListQueryError(format!("query parameter '{name}' is not valid")))
    }
}

/// Parses an integer as Traffic Ops does (Go's `strconv.Atoi`): optional sign, decimal digits,
/// leading zeros allowed, no spaces, no fractions or exponents, within a signed 64-bit range.
pub fn parse_int(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok()
}

/// `value` when it is at least `min`, else the error naming `name`.
fn at_least(value: Option<i64>, min: i64, name: &str) -> Result<Option<i64>, ListQueryError> {
    match value {
        Some(n) if n < min => Err(ListQueryError::invalid(name)),
        _ => Ok(value),
    }
}

/// An RFC 3339 time of the parameter `name`.
fn time_param(raw: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ListQueryError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ListQueryError::invalid(name))
    })
    .transpose()
}

/// The row filters of `params`: kind, created_by, labels, newerThan, olderThan.
type RowFilters = (
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn row_filters(params: &ListParams) -> Result<RowFilters, ListQueryError> {
    if let Some(kind) = &params.kind {
        crate::job::validate_kind(kind).map_err(|_| ListQueryError::invalid("kind"))?;
    }
    if let Some(user) = &params.created_by {
        crate::validate::validate_login_username(user)
            .map_err(|_| ListQueryError::invalid("created_by"))?;
    }
    if params.label.len() > crate::job::MAX_LABELS {
        return Err(ListQueryError::invalid("label"));
    }
    let mut labels = Vec::with_capacity(params.label.len());
    for raw in &params.label {
        let (key, value) = raw
            .split_once(':')
            .ok_or_else(|| ListQueryError::invalid("label"))?;
        crate::job::validate_label_key(key).map_err(|_| ListQueryError::invalid("label"))?;
        crate::job::validate_label_value(value).map_err(|_| ListQueryError::invalid("label"))?;
        labels.push((key.to_owned(), value.to_owned()));
    }
    let newer = time_param(params.newer_than.as_deref(), "newerThan")?;
    let older = time_param(params.older_than.as_deref(), "olderThan")?;
    Ok((
        params.kind.clone(),
        params.created_by.clone(),
        labels,
        newer,
        older,
    ))
}

impl TryFrom<ListParams> for ListQuery {
    type Error = ListQueryError;

    /// The ranges: `limit` positive or -1 ("no limit" in Traffic Ops), `offset` and `page`
    /// only with a positive `limit`, and `offset` wins over `page`, as in Traffic Ops.
    fn try_from(params: ListParams) -> Result<Self, ListQueryError> {
        if params.limit == Some(0) {
            return Err(ListQueryError::invalid("limit"));
        }
        let limit = at_least(params.limit, -1, "limit")?.filter(|n| *n > 0);
        let offset = at_least(params.offset, 0, "offset")?;
        let page = at_least(params.page, 1, "page")?;
        let (kind, created_by, labels, newer_than, older_than) = row_filters(&params)?;
        if (offset.is_some() || page.is_some()) && limit.is_none() {
            let name = if offset.is_some() { "offset" } else { "page" };
            return Err(ListQueryError(format!(
                "query parameter '{name}' requires a positive 'limit'"
            )));
        }
        if let Some(raw) = &params.cursor {
            if offset.is_some() || page.is_some() {
                return Err(ListQueryError(
                    "query parameter 'cursor' cannot be combined with 'offset' or 'page'".into(),
                ));
            }
            let cursor = Cursor::decode(raw).ok_or_else(|| ListQueryError::invalid("cursor"))?;
            let given = (params.status, params.id, params.orderby, params.sort_order);
            let agrees = given.0.is_none_or(|s| Some(s) == cursor.query.status)
                && given.1.is_none_or(|i| Some(i) == cursor.query.id)
                && given.2.is_none_or(|o| o == cursor.query.order_by)
                && given.3.is_none_or(|d| d == cursor.query.sort_order);
            if !agrees {
                return Err(ListQueryError(
                    "query parameter 'cursor' belongs to another query: give the status, id, \
                     orderby and sortOrder of the answer it came from, or leave them out"
                        .into(),
                ));
            }
            // The row filters are not in the cursor (labels would make it long): they are given
            // again with it, and apply as given.
            return Ok(ListQuery {
                limit,
                kind,
                created_by,
                labels,
                newer_than,
                older_than,
                ..cursor.query
            });
        }
        let offset = match (offset, page, limit) {
            (Some(offset), _, _) => offset,
            (None, Some(page), Some(limit)) => (page - 1)
                .checked_mul(limit)
                .ok_or_else(|| ListQueryError("query parameter 'page' is too large".into()))?,
            _ => 0,
        };
        Ok(ListQuery {
            status: params.status,
            id: params.id,
            order_by: params.orderby.unwrap_or_default(),
            sort_order: params.sort_order.unwrap_or_default(),
            limit,
            offset,
            after: None,
            kind,
            created_by,
            labels,
            newer_than,
            older_than,
        })
    }
}

/// 9999-12-31T23:59:59.999999Z, in microseconds since 1970.
const MAX_CURSOR_MICROS: i64 = 253_402_300_799_999_999;

/// A decoded cursor: the query it continues (without `limit`), its `after` set.
struct Cursor {
    query: ListQuery,
}

impl Cursor {
    fn decode(raw: &str) -> Option<Cursor> {
        // Bounds the work on a hostile value; a real cursor is under 100 characters.
        if raw.len() > 200 {
            return None;
        }
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let fields: Vec<&str> = text.split('|').collect();
        let [version, order_by, sort_order, status, id, time, last_id] = fields[..] else {
            return None;
        };
        let order_by = match order_by {
            "i" => OrderBy::Id,
            "s" => OrderBy::StartTime,
            "e" => OrderBy::EndTime,
            "u" => OrderBy::LastUpdated,
            _ => return None,
        };
        let sort_order = match sort_order {
            "a" => SortOrder::Asc,
            "d" => SortOrder::Desc,
            _ => return None,
        };
        let status = match status {
            "-" => None,
            code => Some(
                JobStatus::ALL
                    .into_iter()
                    .find(|s| &s.as_str()[..1] == code)?,
            ),
        };
        let optional = |field: &str| match field {
            "-" => Some(None),
            n => parse_int(n).map(Some),
        };
        // Job times lie between 1970 and 9999, which every backend stores and compares.
        let time = match optional(time)? {
            None => None,
            Some(micros @ 0..=MAX_CURSOR_MICROS) => Some(DateTime::from_timestamp_micros(micros)?),
            Some(_) => return None,
        };
        let time_fits = match order_by {
            OrderBy::Id => time.is_none(),
            OrderBy::StartTime | OrderBy::LastUpdated => time.is_some(),
            OrderBy::EndTime => true,
        };
        if version != "1" || !time_fits {
            return None;
        }
        Some(Cursor {
            query: ListQuery {
                status,
                id: optional(id)?,
                order_by,
                sort_order,
                limit: None,
                offset: 0,
                after: Some(After {
                    time,
                    id: parse_int(last_id)?,
                }),
                ..ListQuery::default()
            },
        })
    }
}

impl ListQuery {
    /// [`ListQuery::cursor_after`] for a query ordered by id, from the last job's id alone (a
    /// job of Traffic Ops' table is no [`AsyncStatus`]).
    pub fn id_cursor_after(&self, last_id: i64) -> String {
        let sort_order = match self.sort_order {
            SortOrder::Asc => "a",
            SortOrder::Desc => "d",
        };
        let status = self.status.map_or("-", |s| &s.as_str()[..1]);
        let id = self.id.map_or_else(|| "-".to_owned(), |n| n.to_string());
        URL_SAFE_NO_PAD.encode(format!("1|i|{sort_order}|{status}|{id}|-|{last_id}"))
    }

    /// The cursor (`summary.next`) of the page after `last`, the last job of a page of this
    /// query.
    pub fn cursor_after(&self, last: &AsyncStatus) -> String {
        let order_by = match self.order_by {
            OrderBy::Id => "i",
            OrderBy::StartTime => "s",
            OrderBy::EndTime => "e",
            OrderBy::LastUpdated => "u",
        };
        let sort_order = match self.sort_order {
            SortOrder::Asc => "a",
            SortOrder::Desc => "d",
        };
        let status = self.status.map_or("-", |s| &s.as_str()[..1]);
        let time = match self.order_by {
            OrderBy::Id => None,
            OrderBy::StartTime => Some(last.start_time),
            OrderBy::EndTime => last.end_time,
            OrderBy::LastUpdated => Some(last.last_updated),
        };
        let optional = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let text = format!(
            "1|{order_by}|{sort_order}|{status}|{}|{}|{}",
            optional(self.id),
            optional(time.map(|t| t.timestamp_micros())),
            last.id
        );
        URL_SAFE_NO_PAD.encode(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_traffic_ops_does() {
        assert_eq!(parse_int("007"), Some(7));
        assert_eq!(parse_int("+1"), Some(1));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "abc",
            "1.5",
            "1e3",
            "9223372036854775808",
            "",
            " 1",
            "1 ",
            "0x10",
            "+-1",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    fn job(id: i64, end: Option<i64>) -> AsyncStatus {
        let at = |micros| DateTime::from_timestamp_micros(micros).unwrap();
        AsyncStatus {
            id,
            status: JobStatus::Failed,
            message: None,
            start_time: at(1_700_000_000_123_456),
            end_time: end.map(at),
            last_updated: at(1_700_000_000_123_456),
            ..Default::default()
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Result<ListQuery, ListQueryError> {
        let mut p = ListParams::default();
        for (name, value) in pairs {
            match *name {
                "cursor" => p.cursor = Some((*value).to_owned()),
                "limit" => p.limit = parse_int(value),
                "offset" => p.offset = parse_int(value),
                "page" => p.page = parse_int(value),
                "status" => p.status = value.parse().ok(),
                "orderby" => {
                    p.orderby = Some(if *value == "id" {
                        OrderBy::Id
                    } else {
                        OrderBy::EndTime
                    })
                }
                _ => unreachable!("{name}"),
            }
        }
        ListQuery::try_from(p)
    }

    #[test]
    fn a_cursor_continues_its_query_after_its_job() {
        for (order_by, last, time) in [
            (OrderBy::Id, job(7, None), None),
            (
                OrderBy::StartTime,
                job(7, None),
                Some(1_700_000_000_123_456),
            ),
            (
                OrderBy::EndTime,
                job(7, Some(1_800_000_000_000_001)),
                Some(1_800_000_000_000_001),
            ),
            (OrderBy::EndTime, job(7, None), None),
        ] {
            let query = ListQuery {
                status: Some(JobStatus::Failed),
                id: None,
                order_by,
                sort_order: SortOrder::Desc,
                limit: Some(20),
                offset: 40,
                after: None,
                ..ListQuery::default()
            };
            let next = query.cursor_after(&last);
            assert!(next
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            let continued = params(&[("cursor", &next), ("limit", "5")]).unwrap();
            assert_eq!(
                continued,
                ListQuery {
                    limit: Some(5),
                    offset: 0,
                    after: Some(After {
                        time: time.map(|t| DateTime::from_timestamp_micros(t).unwrap()),
                        id: 7
                    }),
                    ..query
                }
            );
            // The query's own parameters may be repeated; others are refused.
            assert!(params(&[("cursor", &next), ("status", "FAILED")]).is_ok());
            let other = params(&[("cursor", &next), ("status", "PENDING")]).unwrap_err();
            assert!(other
                .0
                .starts_with("query parameter 'cursor' belongs to another query"));
        }
    }

    #[test]
    fn a_cursor_is_refused_with_offset_or_page_and_when_not_made_here() {
        let next = ListQuery::default().cursor_after(&job(3, None));
        for extra in [("offset", "0"), ("page", "2")] {
            let err = params(&[("cursor", &next), ("limit", "5"), extra]).unwrap_err();
            assert_eq!(
                err.0,
                "query parameter 'cursor' cannot be combined with 'offset' or 'page'"
            );
        }
        let encode = |text: &str| URL_SAFE_NO_PAD.encode(text);
        for bad in [
            String::new(),
            "not base64!".into(),
            encode("garbage"),
            encode("2|i|a|-|-|-|3"),
            encode("1|x|a|-|-|-|3"),
            encode("1|i|up|-|-|-|3"),
            encode("1|i|a|Q|-|-|3"),
            encode("1|i|a|-|-|5|3"),
            encode("1|s|a|-|-|-|3"),
            encode("1|s|a|-|-|253402300800000000|3"),
            encode("1|s|a|-|-|-1|3"),
            encode("1|i|a|-|-|-|3|4"),
            encode("1|i|a|-|-|-|"),
            "A".repeat(201),
        ] {
            let err = params(&[("cursor", &bad)]).unwrap_err();
            assert_eq!(
                err.0, "query parameter 'cursor' must be the summary.next of an earlier answer",
                "{bad:?}"
            );
        }
    }
}
