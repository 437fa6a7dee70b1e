//! `cpwatch run`: the long-running service. The cron tick only wakes the evaluator; what is due
//! is computed from state and `now`, so a missed or doubled tick changes nothing.

use crate::calendar::BankHolidays;
use crate::cli::{runtime, smtp_channel};
use crate::jobs::delivery::Delivery;
use crate::jobs::evaluation::{EvaluationPass, Mode};
use crate::jobs::Runtime;
use crate::mail::Renderer;
use crate::policy::Catalogue;
use crate::settings::Settings;
use crate::store;
use anyhow::Context as _;
use chrono::Utc;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use secrecy::ExposeSecret;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio_cron_scheduler::{Job, JobScheduler};

type DbPool = Pool<ConnectionManager<PgConnection>>;

pub fn run(settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(Arc::new(settings)))
}

async fn serve(settings: Arc<Settings>) -> anyhow::Result<()> {
    let pool: DbPool = Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager::new(
            settings.database.url.expose_secret(),
        ))
        .context("connecting to PostgreSQL (database.url)")?;
    let runtime = {
        let (pool, settings) = (pool.clone(), settings.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Runtime> {
            let mut conn = pool.get()?;
            store::ensure_schema(&mut conn, settings.database.auto_migrate)?;
            runtime(&settings, &mut conn)
        })
        .await??
    };
    let runtime = Arc::new(RwLock::new(Arc::new(runtime)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (wake_tx, wake_rx) = mpsc::channel::<()>(4);
    let queued = Arc::new(Notify::new());

    let mut scheduler = JobScheduler::new().await?;
    let tz: chrono_tz::Tz = settings
        .schedule
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Europe::London);
    let tick = wake_tx.clone();
    scheduler
        .add(Job::new_async_tz(
            settings.schedule.evaluate_cron.as_str(),
            tz,
            move |_, _| {
                let tick = tick.clone();
                Box::pin(async move {
                    // A full queue means a pass is already pending: dropping this wake-up is right.
                    let _ = tick.try_send(());
                })
            },
        )?)
        .await?;
    scheduler.start().await?;
    let _ = wake_tx.try_send(()); // one pass at start-up

    let evaluator = tokio::spawn(evaluation_loop(
        pool.clone(),
        settings.clone(),
        runtime.clone(),
        wake_rx,
        queued.clone(),
        stop_rx.clone(),
    ));
    let delivery = tokio::spawn(delivery_loop(
        pool.clone(),
        settings.clone(),
        runtime.clone(),
        queued.clone(),
        stop_rx.clone(),
    ));
    let holidays = tokio::spawn(holiday_loop(
        pool.clone(),
        settings.clone(),
        runtime.clone(),
        stop_rx.clone(),
    ));
    let watchdog = tokio::spawn(watchdog_loop(stop_rx.clone()));

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!("cpwatch is running");
    wait_for_signal().await;
    tracing::info!("stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let _ = scheduler.shutdown().await;
    for task in [evaluator, delivery, holidays, watchdog] {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a task ended abnormally");
        }
    }
    tracing::info!("stopped");
    Ok(())
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

async fn evaluation_loop(
    pool: DbPool,
    settings: Arc<Settings>,
    runtime: Arc<RwLock<Arc<Runtime>>>,
    mut wake: mpsc::Receiver<()>,
    queued: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            w = wake.recv() => if w.is_none() { return },
        }
        let (pool, settings, rt) = (pool.clone(), settings.clone(), current(&runtime));
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
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
        match result {
            Ok(Ok(report)) => {
                tracing::info!(
                    cases = report.cases,
                    notifications = report.notifications,
                    queued = report.queued,
                    "evaluation pass done"
                );
                if report.queued > 0 {
                    queued.notify_one();
                }
            }
            // The next tick tries again: state, not the tick, decides what is due.
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "evaluation pass failed"),
            Err(e) => tracing::error!(error = %e, "evaluation pass panicked"),
        }
    }
}

async fn delivery_loop(
    pool: DbPool,
    settings: Arc<Settings>,
    runtime: Arc<RwLock<Arc<Runtime>>>,
    queued: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let channel = match smtp_channel(&settings) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot set up SMTP; delivery is off");
            return;
        }
    };
    let renderer = Renderer::new(settings.mail.include_names);
    let Ok(from) = settings.smtp.from.parse() else {
        tracing::error!("smtp.from is not a mailbox; delivery is off");
        return;
    };
    let interval = Duration::from_secs(settings.delivery.interval_seconds);
    loop {
        if *stop.borrow() {
            return;
        }
        let rt = current(&runtime);
        let delivery = Delivery {
            runtime: &rt,
            channel: &channel,
            renderer: &renderer,
            from: &from,
            batch_size: settings.delivery.batch_size,
            lease_seconds: settings.delivery.lease_seconds,
            max_attempts: settings.delivery.max_attempts,
            working_hours_only: settings.delivery.working_hours_only,
        };
        let handled = match tokio::task::block_in_place(|| pool.get()) {
            // A round finishes the messages it claimed, so SIGTERM never leaves one half-done.
            Ok(mut conn) => match delivery.run_once(&mut conn, Utc::now()).await {
                Ok(r) => r.handled(),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "delivery round failed");
                    0
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no database connection for delivery; will retry");
                0
            }
        };
        if handled > 0 {
            continue;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = queued.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn holiday_loop(
    pool: DbPool,
    settings: Arc<Settings>,
    runtime: Arc<RwLock<Arc<Runtime>>>,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_secs(settings.calendar.holiday_refresh_hours.max(1) * 3600);
    loop {
        match crate::holiday_refresh::refresh(
            &settings.calendar.holiday_feed_url,
            Duration::from_secs(30),
        )
        .await
        {
            Ok(feed) => {
                let stored = {
                    let (pool, feed) = (pool.clone(), feed.clone());
                    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                        let mut conn = pool.get()?;
                        crate::holiday_refresh::store_feed(&mut conn, &feed, Utc::now())?;
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
    let catalogue: Catalogue = current(runtime).catalogue.clone();
    let fresh = Arc::new(Runtime::new(settings, catalogue, feed));
    match runtime.write() {
        Ok(mut r) => *r = fresh,
        Err(poisoned) => *poisoned.into_inner() = fresh,
    }
}

async fn watchdog_loop(mut stop: watch::Receiver<bool>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    loop {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
