//! The command-line groups of the worker's flags that programs flatten into their own:
//! the encoder settings ([`EncoderArgs`], in `av1-worker` and `av1-master` alike) and
//! the worker mode's ([`RemoteArgs`], turned into a plain [`RemoteConfig`]).

use std::path::PathBuf;

use anyhow::Context as _;
use av1core::Settings;

use crate::remote::{FileDistribution, RemoteConfig, Secret};
use crate::tls::Trust;

/// Encoder and planning settings, shared by both modes.
#[derive(clap::Args, Debug, Clone)]
pub struct EncoderArgs {
    /// SVT-AV1 preset, 0 (slowest) to 13 (fastest).
    #[arg(long, env = "SVT_AV1_PRESET", default_value_t = 8)]
    pub preset: i8,
    /// CRF instead of the quality table's.
    #[arg(long)]
    pub crf: Option<u8>,
    /// Film grain synthesis level (0 = off).
    #[arg(long, default_value_t = 0)]
    pub film_grain: u8,
    /// Keyframe interval in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub keyint: f64,
    /// Encoder threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Copy every audio track unchanged.
    #[arg(long)]
    pub copy_audio: bool,
    /// Encode the HDR10 base layer of HDR10+ / Dolby Vision sources instead of skipping them.
    #[arg(long)]
    pub dynamic_hdr_base_layer: bool,
    /// Re-encode sources that are already AV1.
    #[arg(long)]
    reencode_av1: bool,
    /// CRF table (quality_lookup.json) overriding the built-in one.
    #[arg(long, env = "QUALITY_LOOKUP")]
    pub quality_table: Option<PathBuf>,
    /// Opus bit-rate table (audio_codec_lookup.json) overriding the built-in one.
    #[arg(long, env = "AUDIO_LOOKUP")]
    pub audio_table: Option<PathBuf>,
    /// Extra SVT-AV1 parameter, KEY=VALUE (repeatable).
    #[arg(long = "svt", value_parser = parse_kv)]
    pub svt_params: Vec<(String, String)>,
}

impl EncoderArgs {
    /// The settings these flags make, checked.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let tables = av1core::plan::Tables::with_overrides(
            self.quality_table.as_deref(),
            self.audio_table.as_deref(),
        )?;
        let settings = Settings {
            preset: self.preset,
            crf: self.crf,
            keyint_seconds: self.keyint,
            threads: self.threads,
            film_grain: self.film_grain,
            copy_audio: self.copy_audio,
            dynamic_hdr_base_layer: self.dynamic_hdr_base_layer,
            reencode_av1: self.reencode_av1,
            svt_params: self.svt_params.clone(),
            tables,
            ..Settings::default()
        };
        settings.validate()?;
        Ok(settings)
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// The worker mode's flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// A file holding the token (the worker token or the admin token) [env
    /// AV1_WORKER_TOKEN or AV1_TOKEN hold it otherwise].
    #[arg(long, env = "AV1_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Name shown by the master; unique per worker [default: the host name].
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,
    /// Master path prefixes and where this worker sees them: `/media=/mnt/media,...`.
    #[arg(long, env = "PATH_MAP", value_delimiter = ',')]
    pub path_map: Vec<String>,
    /// CPU priority, 0 (normal) to 19 (lowest).
    #[arg(long = "nice", env = "NICE_LEVEL", default_value_t = 19)]
    pub nice_level: i32,
    /// I/O priority class: 1 realtime, 2 best effort, 3 idle.
    #[arg(long = "ionice", env = "IONICE_CLASS", default_value_t = 3)]
    pub ionice_class: u8,
    /// A result must be at least this many percent smaller (the master checks again).
    #[arg(long, env = "MIN_SAVINGS_PERCENT", default_value_t = 5.0, value_parser = av1_library::job::savings_percent)]
    pub min_savings: f64,
    /// auto: shared storage when this worker sees the file with the right size, else
    /// download it, encode here and upload the result; true: always download; false:
    /// never.
    #[arg(long, env = "FILE_DISTRIBUTION_MODE", default_value = "auto")]
    pub file_distribution: FileDistribution,
    /// Where the worker keeps calls not yet answered by the master
    /// [default: $XDG_STATE_HOME/av1/worker-NAME].
    #[arg(long, env = "WORKER_STATE")]
    pub state_dir: Option<PathBuf>,
    /// Seconds between claims when the queue is empty.
    #[arg(long, default_value_t = 5.0)]
    pub poll: f64,
    /// Certificates (PEM) trusted for an `https://` master instead of the public
    /// authorities: the master's own self-signed certificate, or your CA's (docs/tls.md).
    #[arg(long, env = "TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl RemoteArgs {
    /// The worker loop's settings: the token read, `PATH_MAP` parsed, TLS trust chosen.
    pub fn config(&self) -> anyhow::Result<RemoteConfig> {
        let path_map = self
            .path_map
            .iter()
            .map(|m| {
                m.split_once('=')
                    .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
                    .with_context(|| format!("PATH_MAP entry {m:?} is not MASTER_PREFIX=LOCAL_PREFIX"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(RemoteConfig {
            token: self.token()?.map(Secret),
            name: self.name.clone(),
            path_map,
            nice_level: self.nice_level,
            ionice_class: self.ionice_class,
            min_savings: self.min_savings,
            file_distribution: self.file_distribution,
            state_dir: self.state_dir.clone(),
            poll: self.poll,
            trust: match &self.tls_ca {
                Some(path) => Trust::Certificates(path.clone()),
                None => Trust::Public,
            },
        })
    }

    /// The token to send: from `--token-file`, else `AV1_WORKER_TOKEN`, else `AV1_TOKEN`.
    fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.token_file {
            let t = std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?;
            return Ok(Some(t.trim().to_owned()));
        }
        let env = |k: &str| std::env::var(k).ok().filter(|t| !t.is_empty());
        Ok(env("AV1_WORKER_TOKEN").or_else(|| env("AV1_TOKEN")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The groups as a program flattens them.
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        encoder: EncoderArgs,
    }

    #[test]
    fn flags_become_plain_settings() {
        let f = Flags::try_parse_from([
            "w",
            "--path-map",
            "/media=/mnt/m,/tv=/mnt/tv",
            "--file-distribution",
            "true",
            "--tls-ca",
            "/ca.pem",
            "--preset",
            "10",
            "--svt",
            "tune=0",
        ])
        .unwrap();
        let c = f.remote.config().unwrap();
        let maps: Vec<(PathBuf, PathBuf)> =
            vec![("/media".into(), "/mnt/m".into()), ("/tv".into(), "/mnt/tv".into())];
        assert_eq!(c.path_map, maps);
        assert_eq!(c.file_distribution, FileDistribution::Always);
        assert_eq!(c.trust, Trust::Certificates("/ca.pem".into()));
        let s = f.encoder.settings().unwrap();
        assert_eq!((s.preset, s.svt_params), (10, vec![("tune".to_owned(), "0".to_owned())]));
    }

    #[test]
    fn bad_flags_are_refused_with_what_is_expected() {
        let f = Flags::try_parse_from(["w", "--path-map", "/media"]).unwrap();
        assert!(f.remote.config().unwrap_err().to_string().contains("MASTER_PREFIX=LOCAL_PREFIX"));
        assert!(Flags::try_parse_from(["w", "--file-distribution", "maybe"]).is_err());
        assert!(Flags::try_parse_from(["w", "--svt", "novalue"]).is_err());
        assert!(Flags::try_parse_from(["w", "--min-savings", "100"]).is_err());
        let slow = Flags::try_parse_from(["w", "--preset", "99"]).unwrap();
        assert!(slow.encoder.settings().is_err(), "preset 99 accepted");
    }
}
