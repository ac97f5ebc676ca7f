//! The deployment files as an administrator meets them: the systemd units pass
//! `systemd-analyze verify` (run on copies whose ExecStart names the binaries just
//! built), carry the product's priorities and the hardening, and hold no secret.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `systemd-analyze verify` of `text` saved as `name` (a template is checked through
/// the instance `verify_as`): every line it prints is a problem.
fn verify(dir: &Path, name: &str, text: &str, verify_as: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join(verify_as))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze (Debian's systemd package; make test installs it)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {said}"))
    }
}

fn with_binary(text: &str, installed: &str, built: &Path) -> String {
    assert!(text.contains(&format!("ExecStart={installed}")), "ExecStart is {installed}");
    text.replace(&format!("ExecStart={installed}"), &format!("ExecStart={}", built.display()))
}

#[test]
fn the_units_verify_and_carry_the_products_settings() {
    let d = tempfile::tempdir().unwrap();
    let bins: PathBuf = support::master_bin();
    let master = with_binary(&unit("av1-master.service"), "/usr/bin/av1-master", &bins);
    let worker = with_binary(&unit("av1-worker@.service"), "/usr/bin/av1-worker", &support::worker_bin());
    verify(d.path(), "av1-master.service", &master, "av1-master.service").unwrap();
    verify(d.path(), "av1-worker@.service", &worker, "av1-worker@films.service").unwrap();
    for (name, text) in [("av1-master.service", &master), ("av1-worker@.service", &worker)] {
        for wanted in [
            "User=av1",
            "Nice=19",
            "IOSchedulingClass=idle",
            "LimitNOFILE=",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
            "LoadCredential=token:",
            "Environment=AV1_TOKEN_FILE=%d/token",
            "Restart=on-failure",
        ] {
            assert!(text.contains(wanted), "{name} lacks {wanted:?}");
        }
        assert!(!text.contains("AV1_TOKEN="), "{name} must not hold a token");
    }
    // A worker drains on SIGTERM: its stop timeout leaves room for an encode to end.
    assert!(worker.contains("TimeoutStopSec=6h"));

    // And the check is real: a setting systemd cannot read is refused.
    let broken = master.replace("Nice=19", "Nice=lowest");
    assert!(verify(d.path(), "av1-master.service", &broken, "av1-master.service").is_err());
}
