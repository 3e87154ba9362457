//! The `asyncstatus-api` binary; see `asyncstatus-api --help`.

fn main() -> anyhow::Result<()> {
    asyncstatus_api::cli::run()
}
