//! What the commands print: a table for people, JSON (`--json`) for scripts.

use asyncstatus_client::Job;

const TIME_FORMAT: chrono::SecondsFormat = chrono::SecondsFormat::Micros;

/// Prints `jobs` as a table with a header line, or as one JSON value (`single`: an object,
/// else an array).
///
/// The `KIND` and `PROGRESS` columns appear when a job has one (so answers of Traffic Ops and
/// older servers look as they always did); a single job is followed by its other lifecycle
/// fields, one `name: value` line each, when set.
pub fn print_jobs(jobs: &[Job], json: bool, single: bool) {
    if json {
        let text = if single && jobs.len() == 1 {
            serde_json::to_string(&jobs[0])
        } else {
            serde_json::to_string(jobs)
        };
        match text {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("asyncstatus: error: writing JSON: {e}"),
        }
        return;
    }
    let kinds = jobs.iter().any(|j| j.kind.is_some());
    let progress = jobs.iter().any(|j| j.progress.is_some());
    let kind_width = jobs
        .iter()
        .filter_map(|j| j.kind.as_deref())
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 64);
    let mut header = format!("{:<8} {:<10} ", "ID", "STATUS");
    if kinds {
        header.push_str(&format!("{:<kind_width$} ", "KIND"));
    }
    if progress {
        header.push_str(&format!("{:<9} ", "PROGRESS"));
    }
    header.push_str(&format!("{:<28} {:<28} MESSAGE", "START_TIME", "END_TIME"));
    println!("{header}");
    for job in jobs {
        let end = job
            .end_time
            .map(|t| t.to_rfc3339_opts(TIME_FORMAT, true))
            .unwrap_or_else(|| "-".into());
        let mut line = format!("{:<8} {:<10} ", job.id, job.status.as_str());
        if kinds {
            let kind = one_line(job.kind.as_deref().unwrap_or("-"), 64);
            line.push_str(&format!("{kind:<kind_width$} "));
        }
        if progress {
            let done = job
                .progress
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into());
            line.push_str(&format!("{done:<9} "));
        }
        line.push_str(&format!(
            "{:<28} {:<28} {}",
            job.start_time.to_rfc3339_opts(TIME_FORMAT, true),
            end,
            one_line(
                job.message.as_deref().unwrap_or(""),
                if single { 4096 } else { 100 }
            )
        ));
        println!("{}", line.trim_end());
    }
    if let [job] = jobs {
        if single {
            for detail in details(job) {
                println!("{detail}");
            }
        }
    }
}

/// A job's lifecycle fields beyond the table's columns, as `name: value` lines (none unset).
fn details(job: &Job) -> Vec<String> {
    let mut lines = Vec::new();
    if !job.labels.is_empty() {
        let labels: Vec<String> = job
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", one_line(k, 64), one_line(v, 256)))
            .collect();
        lines.push(format!("labels: {}", labels.join(", ")));
    }
    if let Some(user) = &job.created_by {
        lines.push(format!("created by: {}", one_line(user, 256)));
    }
    if let Some(deadline) = job.deadline {
        lines.push(format!(
            "deadline: {}",
            deadline.to_rfc3339_opts(TIME_FORMAT, true)
        ));
    }
    if let Some(secs) = job.heartbeat_timeout {
        lines.push(format!("heartbeat timeout: {secs}s"));
    }
    if job.cancel_requested {
        let by = job
            .cancel_requested_by
            .as_deref()
            .map(|u| format!(" by {}", one_line(u, 256)))
            .unwrap_or_default();
        let reason = job
            .cancel_reason
            .as_deref()
            .map(|r| format!(": {}", one_line(r, 4096)))
            .unwrap_or_default();
        lines.push(format!("cancel requested{by}{reason}"));
    }
    lines
}

/// `text` on one line (control characters as spaces), cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use asyncstatus_client::Job;

    #[test]
    fn a_job_s_lifecycle_fields_are_listed_when_set() {
        let job: Job = serde_json::from_str(
            r#"{"id":1,"status":"PENDING","start_time":"2026-12-03T10:00:00Z"}"#,
        )
        .unwrap();
        assert!(super::details(&job).is_empty());
        let job: Job = serde_json::from_str(
            r#"{"id":1,"status":"PENDING","start_time":"2026-12-03T10:00:00Z",
                "labels":{"cdn":"cdn1","xmlId":"demo1"},"created_by":"admin",
                "cancel_requested":true,"cancel_requested_by":"ops","cancel_reason":"wrong cdn"}"#,
        )
        .unwrap();
        assert_eq!(
            super::details(&job),
            [
                "labels: cdn=cdn1, xmlId=demo1",
                "created by: admin",
                "cancel requested by ops: wrong cdn"
            ]
        );
    }

    #[test]
    fn messages_are_flattened_and_cut() {
        assert_eq!(super::one_line("a\nb\tc\u{1b}[31m", 100), "a b c [31m");
        assert_eq!(super::one_line("ééé", 2), "éé…");
    }
}
