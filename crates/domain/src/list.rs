//! The list query of `GET async_status`: filters, ordering and paging as Traffic Ops list
//! endpoints take them, validated from raw query parameters.

use crate::job::JobStatus;

/// Column to order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    #[default]
    Id,
    StartTime,
    EndTime,
}

/// Direction of the ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
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

/// Parses an integer as Traffic Ops does (Go's `strconv.Atoi`): optional sign, decimal digits,
/// leading zeros allowed, no spaces, no fractions or exponents, within a signed 64-bit range.
pub fn parse_int(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok()
}

impl ListQuery {
    /// Builds a query from `(name, value)` pairs. Unknown names are ignored, as Traffic Ops
    /// does; a known name given twice, or with a value it cannot take, is an error naming it.
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ListQueryError> {
        let mut seen: Vec<&str> = Vec::new();
        let mut query = ListQuery::default();
        let (mut limit, mut offset, mut page) = (None, None, None);
        for (name, value) in params {
            const KNOWN: [&str; 7] = [
                "status",
                "id",
                "orderby",
                "sortOrder",
                "limit",
                "offset",
                "page",
            ];
            let Some(known) = KNOWN.into_iter().find(|k| *k == name) else {
                continue;
            };
            if seen.contains(&known) {
                return Err(ListQueryError(format!(
                    "query parameter '{known}' must be given at most once"
                )));
            }
            seen.push(known);
            let int = |min: i64, rule: &str| {
                parse_int(value).filter(|n| *n >= min).ok_or_else(|| {
                    ListQueryError(format!("query parameter '{name}' must be {rule}"))
                })
            };
            match known {
                "status" => {
                    query.status = Some(value.parse().map_err(|_| {
                        ListQueryError(
                            "query parameter 'status' must be one of PENDING, SUCCEEDED, FAILED"
                                .into(),
                        )
                    })?)
                }
                "id" => query.id = Some(int(i64::MIN, "an integer")?),
                "orderby" => {
                    query.order_by =
                        match value {
                            "id" => OrderBy::Id,
                            "start_time" => OrderBy::StartTime,
                            "end_time" => OrderBy::EndTime,
                            _ => return Err(ListQueryError(
                                "query parameter 'orderby' must be one of id, start_time, end_time"
                                    .into(),
                            )),
                        }
                }
                "sortOrder" => {
                    query.sort_order = match value {
                        "asc" => SortOrder::Asc,
                        "desc" => SortOrder::Desc,
                        _ => {
                            return Err(ListQueryError(
                                "query parameter 'sortOrder' must be 'asc' or 'desc'".into(),
                            ))
                        }
                    }
                }
                "limit" => {
                    // -1 means "no limit" in Traffic Ops.
                    let n = int(-1, "a positive integer or -1")?;
                    if n == 0 {
                        return Err(ListQueryError(
                            "query parameter 'limit' must be a positive integer or -1".into(),
                        ));
                    }
                    limit = Some(n);
                }
                "offset" => offset = Some(int(0, "a non-negative integer")?),
                _ => page = Some(int(1, "a positive integer")?),
            }
        }
        query.limit = limit.filter(|n| *n > 0);
        if (offset.is_some() || page.is_some()) && query.limit.is_none() {
            let name = if offset.is_some() { "offset" } else { "page" };
            return Err(ListQueryError(format!(
                "query parameter '{name}' requires a positive 'limit'"
            )));
        }
        // As Traffic Ops: when offset is given, page has no effect.
        query.offset = match (offset, page, query.limit) {
            (Some(offset), _, _) => offset,
            (None, Some(page), Some(limit)) => (page - 1)
                .checked_mul(limit)
                .ok_or_else(|| ListQueryError("query parameter 'page' is too large".into()))?,
            _ => 0,
        };
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&'static str, &'static str)]) -> Result<ListQuery, ListQueryError> {
        ListQuery::from_params(q.iter().copied())
    }

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

    #[test]
    fn defaults_list_everything_by_id() {
        assert_eq!(parse(&[]), Ok(ListQuery::default()));
        assert_eq!(parse(&[("unknown", "x")]), Ok(ListQuery::default()));
    }

    #[test]
    fn filters_order_and_paging() {
        let q = parse(&[
            ("status", "FAILED"),
            ("id", "3"),
            ("orderby", "end_time"),
            ("sortOrder", "desc"),
            ("limit", "10"),
            ("page", "3"),
        ]);
        assert_eq!(
            q,
            Ok(ListQuery {
                status: Some(JobStatus::Failed),
                id: Some(3),
                order_by: OrderBy::EndTime,
                sort_order: SortOrder::Desc,
                limit: Some(10),
                offset: 20,
            })
        );
        let q = parse(&[("limit", "5"), ("offset", "7"), ("page", "9")]);
        assert_eq!(q.map(|q| q.offset), Ok(7), "offset wins over page");
        assert_eq!(parse(&[("limit", "-1")]).map(|q| q.limit), Ok(None));
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("status", "DONE")], "'status'"),
            (&[("id", "x")], "'id'"),
            (&[("orderby", "message")], "'orderby'"),
            (&[("sortOrder", "up")], "'sortOrder'"),
            (&[("limit", "0")], "'limit'"),
            (&[("limit", "ten")], "'limit'"),
            (&[("limit", "-2")], "'limit'"),
            (&[("limit", "5"), ("offset", "-1")], "'offset'"),
            (&[("offset", "5")], "'offset'"),
            (&[("page", "2")], "'page'"),
            (&[("limit", "5"), ("page", "0")], "'page'"),
            (&[("limit", "2"), ("page", "9223372036854775807")], "'page'"),
            (&[("id", "1"), ("id", "2")], "'id'"),
        ];
        for (params, name) in cases {
            let err = ListQuery::from_params(params.iter().copied())
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(err.contains(name), "{params:?} gave {err:?}");
        }
    }
}
