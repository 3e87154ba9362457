//! What the commands print: a table for people, JSON (`--json`) for scripts.

use asyncstatus_client::Job;

const TIME_FORMAT: chrono::SecondsFormat = chrono::SecondsFormat::Micros;

/// Prints `jobs` as a table with a header line, or as one JSON value (`single`: an object,
/// else an array).
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
    println!(
        "{:<8} {:<10} {:<28} {:<28} MESSAGE",
        "ID", "STATUS", "START_TIME", "END_TIME"
    );
    for job in jobs {
        let end = job
            .end_time
            .map(|t| t.to_rfc3339_opts(TIME_FORMAT, true))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<8} {:<10} {:<28} {:<28} {}",
            job.id,
            job.status.as_str(),
            job.start_time.to_rfc3339_opts(TIME_FORMAT, true),
            end,
            one_line(
                job.message.as_deref().unwrap_or(""),
                if single { 4096 } else { 100 }
            )
        );
    }
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
    #[test]
    fn messages_are_flattened_and_cut() {
        assert_eq!(super::one_line("a\nb\tc\u{1b}[31m", 100), "a b c [31m");
        assert_eq!(super::one_line("ééé", 2), "éé…");
    }
}
