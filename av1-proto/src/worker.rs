//! The calls a worker makes, in the order of a job: register, claim, fetch the
//! settings, heartbeats, and the one call that ends the job ([`JobEnd`]). Requests are
//! what the master reads from the network: they refuse unknown fields.

use av1_library::deliver::Delivered;
use av1_library::queue::Claimed;
use av1_library::queue::{Outcome, Status};
use av1core::plan::SkipReason;
use serde::{Deserialize, Serialize};

pub use av1_library::queue::{JobProgress, WorkerInfo, WorkerPhase};

/// `POST /api/v1/workers/register` takes a [`WorkerInfo`]; this is the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub worker_id: i64,
    pub lease_timeout_seconds: f64,
    /// How often the master wants a heartbeat (several per lease).
    pub heartbeat_seconds: f64,
    /// The version of the master's encoder settings ([`ConfigReply`]).
    pub config_version: String,
}

/// `POST /api/v1/jobs/claim`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub worker_id: i64,
    /// Files this worker cannot take now (no room for them on its disk).
    #[serde(default)]
    pub exclude: Vec<i64>,
}

/// `POST /api/v1/jobs/claim`: 200 with a job and its lease (204 when there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimReply {
    #[serde(flatten)]
    pub claimed: Claimed,
    /// The settings' version: the worker fetches them again when it changed.
    pub config_version: String,
}

/// `GET /api/v1/config`: the encoder settings and tables every worker uses (but for
/// its own `threads`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigReply {
    pub version: String,
    pub settings: av1core::Settings,
}

/// `POST /api/v1/jobs/{id}/heartbeat`: the lease, and where the worker is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub lease: String,
    pub phase: WorkerPhase,
    /// Missing or `null` (nothing to report yet): all fields empty.
    #[serde(default, deserialize_with = "null_is_default")]
    pub progress: JobProgress,
}

fn null_is_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The answer to a heartbeat (409 instead when the lease is not the job's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Stop the job: a person cancelled it.
    pub cancel: bool,
    /// The lease now ends then (Unix milliseconds).
    pub expires: i64,
    pub config_version: String,
}

/// The call that ends a job: the last segment of `/api/v1/jobs/{id}/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndCall {
    /// A result is ready (beside the original, or uploaded): check and place it.
    Complete,
    /// Not worth encoding.
    Skip,
    Fail,
    /// Stopped because a person cancelled it.
    Cancelled,
    /// This worker cannot do it (its mount, its disk, a source that changed): back to
    /// the queue without using up an attempt.
    Release,
}

impl EndCall {
    pub const ALL: [EndCall; 5] =
        [EndCall::Complete, EndCall::Skip, EndCall::Fail, EndCall::Cancelled, EndCall::Release];

    pub fn as_str(self) -> &'static str {
        match self {
            EndCall::Complete => "complete",
            EndCall::Skip => "skip",
            EndCall::Fail => "fail",
            EndCall::Cancelled => "cancelled",
            EndCall::Release => "release",
        }
    }

    pub fn parse(s: &str) -> Option<EndCall> {
        EndCall::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for EndCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a worker ends a job. It travels as the call ([`EndCall`], in the URL) and a
/// body with the lease ([`JobEnd::body`]); the master rebuilds it with
/// [`JobEnd::from_body`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "call")]
pub enum JobEnd {
    Complete(Delivered),
    Skip { reason: SkipReason, detail: String },
    Fail { error: String },
    Cancelled,
    Release { detail: String },
}

/// The body of every ending but `complete`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndBody {
    lease: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<SkipReason>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    detail: String,
}

/// The body of `complete`: the lease and the result's description, field by field
/// ([`Delivered`]'s; serde cannot refuse unknown fields through a flattened struct).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    lease: String,
    size: u64,
    blake3: String,
    frames: u64,
    encoder: String,
    fps: f64,
    elapsed: f64,
    #[serde(default)]
    settings: Option<serde_json::Value>,
}

impl CompleteBody {
    fn new(lease: String, d: Delivered) -> CompleteBody {
        let Delivered { size, blake3, frames, encoder, fps, elapsed, settings } = d;
        CompleteBody { lease, size, blake3, frames, encoder, fps, elapsed, settings }
    }

    fn split(self) -> (String, Delivered) {
        let CompleteBody { lease, size, blake3, frames, encoder, fps, elapsed, settings } = self;
        (lease, Delivered { size, blake3, frames, encoder, fps, elapsed, settings })
    }
}

impl JobEnd {
    pub fn call(&self) -> EndCall {
        match self {
            JobEnd::Complete(_) => EndCall::Complete,
            JobEnd::Skip { .. } => EndCall::Skip,
            JobEnd::Fail { .. } => EndCall::Fail,
            JobEnd::Cancelled => EndCall::Cancelled,
            JobEnd::Release { .. } => EndCall::Release,
        }
    }

    /// The request body of this ending under `lease`.
    pub fn body(&self, lease: &str) -> serde_json::Value {
        let lease = lease.to_owned();
        let body = match self.clone() {
            JobEnd::Complete(result) => return json(&CompleteBody::new(lease, result)),
            JobEnd::Skip { reason, detail } => {
                EndBody { lease, reason: Some(reason), detail, ..EndBody::default() }
            }
            JobEnd::Fail { error } => EndBody { lease, error, ..EndBody::default() },
            JobEnd::Cancelled => EndBody { lease, ..EndBody::default() },
            JobEnd::Release { detail } => EndBody { lease, detail, ..EndBody::default() },
        };
        json(&body)
    }

    /// The lease and the ending a worker sent as `call` with `body`; the error says what
    /// is wrong with it (a 400 for the sender).
    pub fn from_body(call: EndCall, body: &[u8]) -> Result<(String, JobEnd), String> {
        let malformed = |e: serde_json::Error| format!("malformed JSON body: {e}");
        if call == EndCall::Complete {
            let (lease, result) = serde_json::from_slice::<CompleteBody>(body).map_err(malformed)?.split();
            return Ok((lease, JobEnd::Complete(result)));
        }
        let b: EndBody = serde_json::from_slice(body).map_err(malformed)?;
        let end = match call {
            EndCall::Fail if b.error.is_empty() => return Err("a failure needs its error".into()),
            EndCall::Fail => JobEnd::Fail { error: b.error },
            EndCall::Skip => match b.reason {
                Some(reason) => JobEnd::Skip { reason, detail: b.detail },
                None => return Err("a skip needs its reason".into()),
            },
            EndCall::Cancelled => JobEnd::Cancelled,
            EndCall::Release => JobEnd::Release { detail: b.detail },
            EndCall::Complete => unreachable!("handled above"),
        };
        Ok((b.lease, end))
    }
}

fn json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The answer to an ending: the file's status now, and for `complete` the outcome of
/// the master's check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndReply {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// `GET` and `PUT /api/v1/jobs/{id}/result`: bytes of the upload the master holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered() -> Delivered {
        Delivered {
            size: 10,
            blake3: "ab".repeat(32),
            frames: 3,
            encoder: "SVT-AV1 2.3.0".into(),
            fps: 1.5,
            elapsed: 2.0,
            settings: Some(serde_json::json!({"preset": 8})),
        }
    }

    #[test]
    fn every_ending_travels_and_comes_back_the_same() {
        let ends = [
            JobEnd::Complete(delivered()),
            JobEnd::Skip { reason: SkipReason::NotWorthIt, detail: "not 5% smaller".into() },
            JobEnd::Fail { error: "corrupt input".into() },
            JobEnd::Cancelled,
            JobEnd::Release { detail: "no room".into() },
        ];
        for end in ends {
            let body = serde_json::to_vec(&end.body("L1")).unwrap();
            assert_eq!(JobEnd::from_body(end.call(), &body), Ok(("L1".to_owned(), end.clone())), "{end:?}");
            // And as the worker keeps it on disk until answered.
            let kept: JobEnd = serde_json::from_str(&serde_json::to_string(&end).unwrap()).unwrap();
            assert_eq!(kept, end);
            assert_eq!(EndCall::parse(end.call().as_str()), Some(end.call()));
        }
    }

    #[test]
    fn endings_missing_what_they_need_or_carrying_more_are_refused() {
        assert_eq!(
            JobEnd::from_body(EndCall::Fail, br#"{"lease":"L"}"#),
            Err("a failure needs its error".into())
        );
        assert_eq!(
            JobEnd::from_body(EndCall::Skip, br#"{"lease":"L"}"#),
            Err("a skip needs its reason".into())
        );
        let extra = JobEnd::from_body(EndCall::Release, br#"{"lease":"L","path":"/etc/passwd"}"#);
        assert!(extra.unwrap_err().contains("unknown field `path`"));
        assert!(JobEnd::from_body(EndCall::Skip, br#"{"lease":"L","reason":"because"}"#).is_err());
        assert!(JobEnd::from_body(EndCall::Complete, br#"{"lease":"L"}"#).is_err());
        let mut extra = JobEnd::Complete(delivered()).body("L");
        extra["path"] = serde_json::json!("/etc/passwd");
        let refused = JobEnd::from_body(EndCall::Complete, extra.to_string().as_bytes());
        assert!(refused.unwrap_err().contains("unknown field `path`"));
    }

    #[test]
    fn a_heartbeat_takes_only_known_phases_and_progress_fields() {
        let ok = br#"{"lease":"L","phase":"encoding","progress":{"percent":12.5,"fps":null}}"#;
        let h: HeartbeatRequest = serde_json::from_slice(ok).unwrap();
        assert_eq!((h.phase, h.progress.percent, h.progress.fps), (WorkerPhase::Encoding, Some(12.5), None));
        for nothing_yet in [
            r#"{"lease":"L","phase":"downloading","progress":null}"#,
            r#"{"lease":"L","phase":"downloading"}"#,
        ] {
            let h: HeartbeatRequest = serde_json::from_str(nothing_yet).unwrap();
            assert_eq!(h.progress, JobProgress::default());
        }
        for bad in [
            r#"{"lease":"L","phase":"<script>"}"#,
            r#"{"lease":"L","phase":"encoding","progress":{"percent":1,"note":"x"}}"#,
            r#"{"lease":"L","phase":"encoding","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<HeartbeatRequest>(bad).is_err(), "{bad}");
        }
        let back: HeartbeatRequest = serde_json::from_value(serde_json::to_value(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn claims_and_registrations_round_trip() {
        let c = ClaimRequest { worker_id: 3, exclude: vec![1, 2] };
        assert_eq!(serde_json::from_value::<ClaimRequest>(serde_json::to_value(&c).unwrap()).unwrap(), c);
        assert_eq!(
            serde_json::from_str::<ClaimRequest>(r#"{"worker_id":3}"#).unwrap().exclude,
            Vec::<i64>::new()
        );
        let info = WorkerInfo { name: "w".into(), host: "h".into(), cores: Some(2), ..WorkerInfo::default() };
        assert_eq!(serde_json::from_value::<WorkerInfo>(serde_json::to_value(&info).unwrap()).unwrap(), info);
        assert!(serde_json::from_str::<WorkerInfo>(r#"{"name":"w","host":"h","admin":true}"#).is_err());
        let r = Registered {
            worker_id: 1,
            lease_timeout_seconds: 60.0,
            heartbeat_seconds: 10.0,
            config_version: "v".into(),
        };
        assert_eq!(serde_json::from_value::<Registered>(serde_json::to_value(&r).unwrap()).unwrap(), r);
    }
}
