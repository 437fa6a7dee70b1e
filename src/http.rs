//! The daemon's HTTP listener (`[metrics] listen`): `/metrics` (Prometheus text format),
//! `/healthz` (liveness: the process answers and its loops show recent heartbeats) and
//! `/readyz` (readiness: the checks of `cpwatch health`, 200 when all pass, else 503).

use crate::health::{self, Check, Limits};
use crate::jobs::delivery::{DbPool, Heartbeat};
use crate::settings::Settings;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex};

/// How long `/readyz` reuses its last login to the relay (a probe every few seconds must not
/// log in to the relay every few seconds).
const RELAY_LOGIN_EVERY: Duration = Duration::from_secs(60);

/// What the handlers read.
pub struct Probe {
    pub handle: PrometheusHandle,
    pub pool: DbPool,
    pub settings: Arc<Settings>,
    /// Each loop, its heartbeat and how long it may go without one.
    pub loops: Vec<(&'static str, Heartbeat, Duration)>,
    relay_login: Mutex<Option<(Instant, Check)>>,
}

impl Probe {
    pub fn new(
        handle: PrometheusHandle,
        pool: DbPool,
        settings: Arc<Settings>,
        loops: Vec<(&'static str, Heartbeat, Duration)>,
    ) -> Probe {
        Probe {
            handle,
            pool,
            settings,
            loops,
            relay_login: Mutex::new(None),
        }
    }
}

/// The routes, for `serve` (and tests).
pub fn router(probe: Arc<Probe>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(probe)
}

/// Serve until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probe: Arc<Probe>,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, router(probe))
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %e, "the metrics and health listener failed");
    }
}

async fn metrics(State(p): State<Arc<Probe>>) -> Response {
    let probe = p.clone();
    let text = tokio::task::spawn_blocking(move || {
        let mut conn = probe.pool.get().ok();
        crate::metrics::render(&probe.handle, conn.as_deref_mut(), Utc::now())
    })
    .await;
    match text {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn healthz(State(p): State<Arc<Probe>>) -> Response {
    let stalled: Vec<&str> = p
        .loops
        .iter()
        .filter(|(_, beat, limit)| beat.age_seconds() > limit.as_secs() as i64)
        .map(|(name, _, _)| *name)
        .collect();
    let names: Vec<&str> = p.loops.iter().map(|(n, _, _)| *n).collect();
    if stalled.is_empty() {
        let body = format!("ok: the {} loops are alive\n", names.join(" and "));
        (StatusCode::OK, body).into_response()
    } else {
        let body = format!(
            "stalled or stopped: {} (no heartbeat within its limit)\n",
            stalled.join(", ")
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn readyz(State(p): State<Arc<Probe>>, headers: HeaderMap) -> Response {
    let mut checks = {
        let settings = p.settings.clone();
        tokio::task::spawn_blocking(move || {
            use secrecy::ExposeSecret;
            let url = settings.database.url.expose_secret();
            health::database_checks(url, &Limits::default(), Utc::now())
        })
        .await
        .unwrap_or_else(|e| vec![failed("database", e.to_string())])
    };
    checks.push(relay_login(&p).await);
    let status = if checks.iter().all(|c| c.ok) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let body = health::json(&checks).to_string();
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let body: String = checks.iter().map(|c| format!("{c}\n")).collect();
    (status, body).into_response()
}

/// The relay login check, reused for `RELAY_LOGIN_EVERY`.
async fn relay_login(p: &Probe) -> Check {
    let mut cached = p.relay_login.lock().await;
    if let Some((at, check)) = cached.as_ref() {
        if at.elapsed() < RELAY_LOGIN_EVERY {
            return check.clone();
        }
    }
    let check = health::relay_login(&p.settings).await;
    *cached = Some((Instant::now(), check.clone()));
    check
}

fn failed(name: &'static str, detail: String) -> Check {
    Check {
        name,
        ok: false,
        detail,
    }
}
