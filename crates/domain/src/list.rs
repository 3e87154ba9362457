//! The list query of `GET async_status`: filters, ordering and paging as Traffic Ops list
//! endpoints take them, read into [`ListParams`] and validated into a [`ListQuery`].

use serde::Deserialize;

use crate::job::JobStatus;

/// Column to order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    #[default]
    Id,
    StartTime,
    EndTime,
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
}

/// A query parameter that cannot be used; the text names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ListQueryError(pub String);

/// What each list parameter must be.
const RULES: [(&str, &str); 7] = [
    ("status", "one of PENDING, SUCCEEDED, FAILED"),
    ("id", "an integer"),
    ("orderby", "one of id, start_time, end_time"),
    ("sortOrder", "'asc' or 'desc'"),
    ("limit", "a positive integer or -1"),
    ("offset", "a non-negative integer"),
    ("page", "a positive integer"),
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
        if (offset.is_some() || page.is_some()) && limit.is_none() {
            let name = if offset.is_some() { "offset" } else { "page" };
            return Err(ListQueryError(format!(
                "query parameter '{name}' requires a positive 'limit'"
            )));
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
        })
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
}
