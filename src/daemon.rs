//! `cpwatch run`: the long-running service. The cron tick only wakes the evaluator; what is due
//! is computed from state and `now`, so a missed or doubled tick changes nothing.

use crate::calendar::BankHolidays;
use crate::jobs::delivery::{Control, Db, DbPool, Delivery, Heartbeat};
use crate::jobs::evaluation::{EvaluationPass, Mode};
use crate::jobs::Runtime;
use crate::mail::{Channel, Renderer};
use crate::settings::Settings;
use crate::store;
use anyhow::Context as _;
use chrono::Utc;
use diesel::r2d2::{ConnectionManager, Pool};
use secrecy::ExposeSecret;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio_cron_scheduler::JobScheduler;
use tracing::Instrument as _;

/// How long a loop may go without a heartbeat before the watchdog stops vouching for it.
const EVALUATION_STALL: Duration = Duration::from_secs(30 * 60);

pub fn run(settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(Arc::new(settings)))
}

/// What the daemon's loops share: the database pool, the settings, the runtime (rebuilt when
/// the bank holidays change), the "mail was queued" signal and the stop signal.
#[derive(Clone)]
struct Shared {
    pool: DbPool,
    settings: Arc<Settings>,
    runtime: Arc<RwLock<Arc<Runtime>>>,
    queued: Arc<Notify>,
    stop: watch::Receiver<bool>,
}

async fn serve(settings: Arc<Settings>) -> anyhow::Result<()> {
    // Templates that do not compile stop cpwatch before anything is evaluated or sent.
    Renderer::configured(&settings).map_err(crate::mail::template_error)?;
    let url = settings.database.url.expose_secret();
    crate::dburl::check(url).map_err(store::StoreError::BadUrl)?;
    let pool: DbPool = Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(10))
        .error_handler(Box::new(store::ScrubbedLog(settings.database.url.clone())))
        .build(ConnectionManager::new(url))
        .map_err(|e| anyhow::anyhow!(crate::dburl::scrub(&e.to_string(), url)))
        .context("connecting to PostgreSQL (database.url)")?;
    let runtime = {
        let (pool, settings) = (pool.clone(), settings.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Runtime> {
            let mut conn = pool.get()?;
            store::ensure_schema(&mut conn, settings.database.auto_migrate)?;
            Ok(Runtime::load(&settings, &mut conn))
        })
        .await??
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Shared {
        pool,
        settings: settings.clone(),
        runtime: Arc::new(RwLock::new(Arc::new(runtime))),
        queued: Arc::new(Notify::new()),
        stop: stop_rx,
    };
    let (wake_tx, wake_rx) = mpsc::channel::<()>(4);
    let mut scheduler = JobScheduler::new().await?;
    crate::schedule::install(
        &scheduler,
        &settings.schedule.evaluate_cron,
        settings.schedule.timezone,
        wake_tx.clone(),
    )
    .await?;
    scheduler.start().await?;
    // One pass at start-up.
    let _ = wake_tx.try_send(());
    // Before any loop runs, or what the first pass counts before a recorder exists is lost.
    let metrics = install_metrics(&settings);
    let (mut tasks, watched) = spawn_loops(&shared, wake_rx);
    if let Some(task) = start_http(&shared, metrics, watched).await {
        tasks.push(task);
    }
    // Rows a case system writes are evaluated within seconds, not at the next tick.
    tasks.push(tokio::spawn(crate::listen::run(
        settings.database.url.expose_secret().to_owned(),
        wake_tx.clone(),
        shared.stop.clone(),
    )));

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!("cpwatch is running");
    wait_for_signal().await;
    tracing::info!("stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let _ = scheduler.shutdown().await;
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a task ended abnormally");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Each loop the watchdog and `/healthz` watch: its name, heartbeat and stall limit.
type Watched = Vec<(&'static str, Heartbeat, Duration)>;

/// The metrics recorder, when `[metrics] enabled`; one that cannot be set up is logged and left
/// out (the mail matters more than the figures).
fn install_metrics(settings: &Settings) -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    if !settings.metrics.enabled {
        return None;
    }
    match crate::metrics::install() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot set up metrics; /metrics is off");
            None
        }
    }
}

/// The metrics and health listener, when the metrics recorder is installed. A listener that
/// cannot start is logged and left out: the mail matters more than the figures.
async fn start_http(
    shared: &Shared,
    handle: Option<metrics_exporter_prometheus::PrometheusHandle>,
    watched: Watched,
) -> Option<tokio::task::JoinHandle<()>> {
    let m = &shared.settings.metrics;
    let handle = handle?;
    let listener = match tokio::net::TcpListener::bind(m.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                error = %e,
                "metrics.listen {}: cannot listen; metrics and health probes are off (is another \
                 cpwatch on this machine using the port?)",
                m.listen
            );
            return None;
        }
    };
    let at = listener.local_addr().map_or(m.listen, |a| a);
    tracing::info!(address = %at, "metrics on http://{at}/metrics, probes on /healthz and /readyz");
    let probe = crate::http::Probe::new(
        handle,
        shared.pool.clone(),
        shared.settings.clone(),
        watched,
    );
    Some(tokio::spawn(crate::http::serve(
        listener,
        Arc::new(probe),
        shared.stop.clone(),
    )))
}

/// The evaluation, delivery, bank-holiday and watchdog loops.
fn spawn_loops(
    shared: &Shared,
    wake: mpsc::Receiver<()>,
) -> (Vec<tokio::task::JoinHandle<()>>, Watched) {
    let (eval_beat, delivery_beat) = (Heartbeat::default(), Heartbeat::default());
    eval_beat.beat();
    delivery_beat.beat();
    let d = &shared.settings.delivery;
    let stall = Duration::from_secs(
        (d.lease_seconds.max(0) as u64)
            .max(3 * d.interval_seconds)
            .max(60),
    );
    let watched = vec![
        ("evaluation", eval_beat.clone(), EVALUATION_STALL),
        ("delivery", delivery_beat.clone(), stall),
    ];
    let tasks = vec![
        tokio::spawn(evaluation_loop(eval_beat, shared.clone(), wake)),
        tokio::spawn(delivery_loop(delivery_beat, shared.clone())),
        tokio::spawn(holiday_loop(shared.clone())),
        tokio::spawn(crate::jobs::team_channel::run_loop(
            shared.pool.clone(),
            shared.settings.clone(),
            shared.runtime.clone(),
            shared.stop.clone(),
        )),
        tokio::spawn(watchdog_loop(watched.clone(), shared.stop.clone())),
    ];
    (tasks, watched)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn current(runtime: &RwLock<Arc<Runtime>>) -> Arc<Runtime> {
    match runtime.read() {
        Ok(r) => r.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Waits for a wake-up (the cron tick, or start-up), runs a pass, and after a failed pass (the
/// database away, say) tries again soon with backoff rather than waiting for the next tick.
async fn evaluation_loop(heartbeat: Heartbeat, shared: Shared, mut wake: mpsc::Receiver<()>) {
    let Shared {
        pool,
        settings,
        runtime,
        queued,
        mut stop,
    } = shared;
    let mut failures: u32 = 0;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut beat = tokio::time::interval(Duration::from_secs(5));
    loop {
        heartbeat.beat();
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            w = wake.recv() => if w.is_none() { return },
            _ = retry => {}
            _ = beat.tick() => continue,
        }
        let (pool, settings, rt) = (pool.clone(), settings.clone(), current(&runtime));
        let span = pass_span();
        let inner = span.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let _in_pass = inner.enter();
            let mut conn = pool.get()?;
            let pass = EvaluationPass {
                runtime: &rt,
                now: Utc::now(),
                mode: Mode::Write,
                full: false,
                batch_size: settings.database.batch_size,
            };
            pass.run(&mut conn, &mut |_| {})
        })
        .await;
        let failed = span.in_scope(|| pass_failed(result, &queued));
        if failed {
            failures = failures.saturating_add(1);
            let wait = Duration::from_secs((5u64 << failures.min(6)).min(300));
            tracing::info!(seconds = wait.as_secs(), "trying the evaluation pass again");
            retry_at = Some(tokio::time::Instant::now() + wait);
        } else {
            failures = 0;
            retry_at = None;
        }
    }
}

/// Log how a pass went (and wake delivery when it queued mail); true if it failed.
fn pass_failed(
    result: Result<anyhow::Result<crate::jobs::evaluation::PassReport>, tokio::task::JoinError>,
    queued: &Notify,
) -> bool {
    match result {
        Ok(Ok(report)) => {
            tracing::info!(
                cases = report.cases,
                disputes = report.disputes,
                notifications = report.notifications,
                queued = report.queued,
                skipped = report.skipped,
                "evaluation pass done"
            );
            if report.queued > 0 {
                queued.notify_one();
            }
            false
        }
        // State, not the tick, decides what is due: a later pass catches up.
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "evaluation pass failed");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "evaluation pass panicked");
            true
        }
    }
}

/// The span of one evaluation pass: every line it logs carries `pass_id`
/// (`{UTC start}-{process id}-{sequence}`), so one pass's lines can be followed across replicas.
fn pass_span() -> tracing::Span {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!(
        "{}-{}-{n}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    tracing::info_span!("pass", pass_id = %id)
}

async fn delivery_loop(heartbeat: Heartbeat, shared: Shared) {
    let Shared {
        pool,
        settings,
        runtime,
        queued,
        mut stop,
    } = shared;
    let channel = match Channel::configured(&settings) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot set up the mail channel; delivery is off");
            return;
        }
    };
    let renderer = match Renderer::configured(&settings) {
        Ok(r) => r,
        Err(problems) => {
            let e = crate::mail::template_error(problems);
            tracing::error!(error = %format!("{e:#}"), "mail templates do not compile; delivery is off");
            return;
        }
    };
    let mut control = Control::from_settings(&settings.delivery);
    control.heartbeat = heartbeat.clone();
    control.stop = Some(stop.clone());
    tracing::info!(worker = %control.worker, "delivering");
    let interval = Duration::from_secs(settings.delivery.interval_seconds);
    let mut db = Db::pool(&pool);
    let mut round: u64 = 0;
    loop {
        round += 1;
        heartbeat.beat();
        if *stop.borrow() {
            break;
        }
        let rt = current(&runtime);
        let delivery = Delivery::configured(
            &rt,
            &channel,
            &renderer,
            &settings.smtp.from,
            &settings.delivery,
            control.clone(),
        );
        // A round finishes the message it is sending and gives back the rest on SIGTERM.
        let span = tracing::info_span!("delivery_round", round);
        let handled = match delivery
            .run_round(&mut db, Utc::now())
            .instrument(span)
            .await
        {
            Ok(r) => r.handled(),
            Err(e) => {
                // Usually the database is away: claimed rows come back when their lease ends.
                tracing::error!(error = %format!("{e:#}"), "delivery round failed; will retry");
                0
            }
        };
        if handled > 0 {
            continue;
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = queued.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
    // Say goodbye on the connection kept for the next message.
    channel.close().await;
}

async fn holiday_loop(shared: Shared) {
    let Shared {
        pool,
        settings,
        runtime,
        mut stop,
        ..
    } = shared;
    let every = Duration::from_secs(settings.calendar.holiday_refresh_hours.max(1) * 3600);
    loop {
        // A slow feed must not hold up a stop.
        let fetched = tokio::select! {
            _ = stop.changed() => return,
            f = crate::holiday_refresh::refresh(
                &settings.calendar.holiday_feed_url,
                Duration::from_secs(30),
            ) => f,
        };
        match fetched {
            Ok(feed) => {
                let stored = {
                    let (pool, feed) = (pool.clone(), feed.clone());
                    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                        let mut conn = pool.get()?;
                        store::holidays::store_feed(&mut conn, &feed, Utc::now())?;
                        Ok(())
                    })
                    .await
                };
                if let Ok(Err(e)) | Err(e) = stored.map_err(anyhow::Error::from) {
                    tracing::warn!(error = %format!("{e:#}"), "could not store the bank-holiday feed");
                }
                rebuild(&settings, &runtime, &feed);
                tracing::info!("bank holidays refreshed");
            }
            Err(e) => {
                tracing::warn!(error = %e, "bank-holiday refresh failed; keeping the last good copy")
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

fn rebuild(settings: &Settings, runtime: &RwLock<Arc<Runtime>>, feed: &BankHolidays) {
    let fresh = Arc::new(Runtime::new(settings, feed));
    match runtime.write() {
        Ok(mut r) => *r = fresh,
        Err(poisoned) => *poisoned.into_inner() = fresh,
    }
}

/// Pings the systemd watchdog while every loop shows a recent heartbeat; when one stalls or has
/// died, the pings stop and systemd restarts the service (`WatchdogSec`).
async fn watchdog_loop(
    loops: Vec<(&'static str, Heartbeat, Duration)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    let mut was_healthy = true;
    loop {
        let stalled: Vec<&str> = loops
            .iter()
            .filter(|(_, beat, limit)| beat.age_seconds() > limit.as_secs() as i64)
            .map(|(name, _, _)| *name)
            .collect();
        if stalled.is_empty() {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            was_healthy = true;
        } else if was_healthy {
            tracing::error!(loops = ?stalled, "a loop has stalled or died; no more watchdog pings");
            was_healthy = false;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
