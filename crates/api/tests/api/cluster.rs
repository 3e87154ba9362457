//! A PostgreSQL cluster of a test's own, which the test may stop and start (the shared test
//! cluster serves other tests at the same time). Made from the server binaries that
//! `scripts/with-postgres` found (or `pg_config --bindir`); as root it runs as `postgres`.

use std::path::PathBuf;
use std::process::Command;

use asyncstatus_persistence::testing::postgres_admin_url;

pub struct PrivateCluster {
    dir: PathBuf,
    bindir: PathBuf,
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PrivateCluster {
    /// A running cluster, or `None` when PostgreSQL tests are skipped.
    pub fn start() -> Option<PrivateCluster> {
        postgres_admin_url()?;
        let bindir = std::env::var_os("ASYNCSTATUS_TEST_PG_BINDIR")
            .map(PathBuf::from)
            .or_else(|| {
                let out = Command::new("pg_config").arg("--bindir").output().ok()?;
                Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
            })
            .expect("PostgreSQL server binaries");
        let dir = std::env::temp_dir().join(format!(
            "asyncstatus-private-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(Command::new("chown")
                .arg("postgres")
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivateCluster { dir, bindir, port };
        cluster.run(
            "initdb",
            &[
                "-D",
                "data",
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
            cluster.dir.display()
        );
        let conf_path = cluster.dir.join("data/postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        cluster.start_again();
        Some(cluster)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd.args(args).current_dir(&self.dir).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/{db}`, creating the database first.
    pub fn database(&self, db: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                db,
            ],
        );
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (fast: connections are cut).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", "data", "-m", "fast", "-w", "stop"]);
    }

    /// Starts the stopped server again.
    pub fn start_again(&self) {
        self.run("pg_ctl", &["-D", "data", "-l", "server.log", "-w", "start"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(if is_root() { "runuser" } else { "env" })
            .args(if is_root() {
                vec!["-u", "postgres", "--"]
            } else {
                vec![]
            })
            .arg(self.bindir.join("pg_ctl"))
            .args(["-D", "data", "-m", "immediate", "stop"])
            .current_dir(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
