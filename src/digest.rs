//! Digests, the pure part: who receives one message each working morning instead of single
//! reminders and "due today" notices, which morning's digest a delivery waits for, and a
//! digest's items grouped by case. No clock reads and no I/O: the instant is always given.
//!
//! Only reminders and "due today" notices ever wait for a digest. Overdue notices, escalations,
//! cause-for-concern letters, disagreement mail and anything urgent go at once, as before; and a
//! notice whose deadline would pass before the next digest is not held either.

use crate::calendar::Calendar;
use crate::domain::{Email, PartnershipId};
use crate::evaluate::{Kind, Notice, NoticeKey, Recipient};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use std::borrow::Borrow;
use std::collections::BTreeSet;

/// Who in one partnership receives a digest, and at what local time of each working morning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptIn {
    pub time: NaiveTime,
    /// E-mail addresses, lower-case.
    pub people: BTreeSet<String>,
    /// Roles as the mail names them (`social_worker`, `team_manager`, ...).
    pub roles: BTreeSet<String>,
}

impl OptIn {
    /// Whether this recipient has opted in, by address or by any role they are told as.
    pub fn wants(&self, r: &Recipient) -> bool {
        self.people.contains(&r.email.as_str().to_ascii_lowercase())
            || r.role.split('+').any(|role| self.roles.contains(role))
    }
}

/// The kinds that may wait for a digest.
pub fn may_wait(kind: Kind) -> bool {
    matches!(kind, Kind::Reminder | Kind::Due)
}

/// The first digest instant (`time` on a working day in the calendar's zone) at or after
/// `from`, and not on a day before `not_before`. At or after: what the pass of the digest's own
/// instant queues (a "due today" notice at opening time) goes in that digest, which is made only
/// once that pass has run (`ready_by`).
pub fn next_digest(
    cal: &Calendar,
    time: NaiveTime,
    from: DateTime<Utc>,
    not_before: NaiveDate,
) -> DateTime<Utc> {
    let mut day = cal.local_date(from).max(not_before);
    loop {
        if cal.is_working_day(day) {
            let at = cal.at_local(day, time);
            if at >= from {
                return at;
            }
        }
        day = cal.add_working_days(cal.working_day_on_or_after(day), 1);
    }
}

/// How far digests may be made at `now`: up to the instant of the last evaluation pass that
/// ran (so the pass of the digest's own instant has queued what it carries), and never more than
/// an hour behind `now` (no pass is running: the digests still go).
pub fn ready_by(now: DateTime<Utc>, last_pass: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let waited = now - chrono::Duration::hours(1);
    last_pass.map_or(waited, |p| p.min(now).max(waited))
}

/// A pass a little after a digest's instant (the daemon's hourly pass reads the clock just after
/// the hour) still counts as that digest's pass: what it queues goes in that digest.
pub const PASS_GRACE: chrono::Duration = chrono::Duration::minutes(5);

/// One delivery to hold: notice `key` to `recipient`, until the digest at `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub key: String,
    pub recipient: String,
    pub until: DateTime<Utc>,
}

/// The deliveries of `notices` queued at `now` that wait for a digest: reminders and "due today"
/// notices to people who opted in, each until the next digest from `now` (less `PASS_GRACE`; not
/// before the working day it is to be sent), provided that digest comes before its deadline.
pub fn holds<N: Borrow<Notice>>(
    opt: &OptIn,
    cal: &Calendar,
    notices: &[N],
    now: DateTime<Utc>,
) -> Vec<Hold> {
    let mut out = Vec::new();
    let notices = notices.iter().map(|n| n.borrow());
    for n in notices.filter(|n| may_wait(n.kind) && !n.urgent) {
        let until = next_digest(
            cal,
            opt.time,
            now - PASS_GRACE,
            cal.local_date(n.send_after),
        );
        if until >= n.due {
            continue;
        }
        for (r, _) in n.recipients().filter(|(r, _)| opt.wants(r)) {
            out.push(Hold {
                key: n.key.to_string(),
                recipient: r.email.as_str().to_owned(),
                until,
            });
        }
    }
    out
}

/// A digest's items: those whose deadline has passed by `now` are stale (the overdue notice
/// says what matters) and are not carried; the rest are.
pub fn split_stale<T>(items: Vec<(T, Notice)>, now: DateTime<Utc>) -> (Vec<(T, Notice)>, Vec<T>) {
    let mut fresh = Vec::new();
    let mut stale = Vec::new();
    for (id, n) in items {
        if n.due <= now {
            stale.push(id);
        } else {
            fresh.push((id, n));
        }
    }
    (fresh, stale)
}

/// Items grouped by case (in case order; within a case, by deadline then rule). Items about no
/// case are grouped under "-".
pub fn by_case(items: &[Notice]) -> Vec<(String, Vec<&Notice>)> {
    let mut sorted: Vec<&Notice> = items.iter().collect();
    let case_of = |n: &Notice| n.case.as_ref().map_or("-".to_owned(), |c| c.to_string());
    sorted.sort_by(|a, b| {
        (case_of(a), a.due, &a.rule, &a.key).cmp(&(case_of(b), b.due, &b.rule, &b.key))
    });
    let mut out: Vec<(String, Vec<&Notice>)> = Vec::new();
    for n in sorted {
        let case = case_of(n);
        match out.last_mut() {
            Some((c, list)) if *c == case => list.push(n),
            _ => out.push((case, vec![n])),
        }
    }
    out
}

/// The digest notice to `to` of the working morning `date`, made at `at`: one recipient, told
/// as the role(s) the items reached them as. Its items are not part of it: the deliveries it
/// carries point at it (`deliveries.digest_id`).
pub fn notice(
    partnership: &PartnershipId,
    to: &Email,
    role: &str,
    date: NaiveDate,
    at: DateTime<Utc>,
    count: usize,
) -> Notice {
    Notice {
        key: NoticeKey::digest(partnership, date, to.as_str()),
        kind: Kind::Digest,
        rule: "digest".into(),
        standard: None,
        title: format!("{count} reminder(s) and due-today notice(s)"),
        action: "See each case below.".into(),
        partnership: partnership.clone(),
        case: None,
        dispute: None,
        occurrence: date.format("%Y-%m-%d").to_string(),
        step: "digest".into(),
        letter: None,
        due: at,
        trigger_at: at,
        send_after: at,
        urgent: false,
        to: vec![Recipient {
            email: to.clone(),
            person: None,
            name: None,
            role: role.to_owned(),
        }],
        cc: vec![],
        facts: Default::default(),
    }
}

/// The role(s) `email` was told as across these items, joined with `+`, or "recipient".
pub fn role_of(email: &str, items: &[Notice]) -> String {
    let mut roles: Vec<String> = Vec::new();
    for n in items {
        for (r, _) in n.recipients().filter(|(r, _)| r.email.as_str() == email) {
            for role in r.role.split('+') {
                if !roles.iter().any(|x| x == role) {
                    roles.push(role.to_owned());
                }
            }
        }
    }
    if roles.is_empty() {
        "recipient".into()
    } else {
        roles.join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cal() -> Calendar {
        let good_friday = NaiveDate::from_ymd_opt(2026, 4, 3).unwrap();
        Calendar::new(
            chrono_tz::Europe::London,
            NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            vec![good_friday],
        )
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_next_digest_is_a_working_morning_at_or_after_the_instant() {
        let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let c = cal();
        // Tuesday 09:00 GMT → Wednesday 08:00.
        let t = at("2026-03-03T09:00:00Z");
        assert_eq!(
            next_digest(&c, eight, t, day("2026-03-03")),
            at("2026-03-04T08:00:00Z")
        );
        // Tuesday 07:00 → that morning.
        let t = at("2026-03-03T07:00:00Z");
        assert_eq!(
            next_digest(&c, eight, t, day("2026-03-03")),
            at("2026-03-03T08:00:00Z")
        );
        // At 08:00 exactly: that digest (made once the 08:00 pass has run).
        let t = at("2026-03-03T08:00:00Z");
        assert_eq!(
            next_digest(&c, eight, t, day("2026-03-03")),
            at("2026-03-03T08:00:00Z")
        );
        let t = at("2026-03-03T08:00:01Z");
        assert_eq!(
            next_digest(&c, eight, t, day("2026-03-03")),
            at("2026-03-04T08:00:00Z")
        );
        // Thursday 2 April (BST) afternoon → Good Friday and the weekend skipped → Monday 6
        // April 08:00 BST.
        let t = at("2026-04-02T14:00:00Z");
        assert_eq!(
            next_digest(&c, eight, t, day("2026-04-02")),
            at("2026-04-06T07:00:00Z")
        );
        // Not before the day it is to be sent.
        let t = at("2026-03-03T07:00:00Z");
        assert_eq!(
            next_digest(&c, eight, t, day("2026-03-05")),
            at("2026-03-05T08:00:00Z")
        );
        assert_eq!(
            Utc.with_ymd_and_hms(2026, 3, 5, 8, 0, 0).unwrap(),
            next_digest(&c, eight, t, day("2026-03-05"))
        );
    }

    fn item(kind: Kind, case: &str, role: &str, queued_due: (&str, &str)) -> Notice {
        let p = PartnershipId::parse("knowsley").unwrap();
        let email = Email::parse(&format!("{role}@ksc.example.org")).unwrap();
        let mut n = notice(&p, &email, role, NaiveDate::MIN, at(queued_due.0), 0);
        n.kind = kind;
        n.case = Some(crate::domain::CaseRef::parse(case).unwrap());
        n.key = NoticeKey::stored(format!("k/{case}/{}/{}", kind.as_str(), queued_due.1));
        n.send_after = cal().next_working_instant(at(queued_due.0));
        n.due = at(queued_due.1);
        n
    }

    #[test]
    fn only_reminders_and_due_today_to_those_who_opted_in_wait_and_never_past_their_deadline() {
        let opt = OptIn {
            time: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            people: BTreeSet::from(["tm@ksc.example.org".to_owned()]),
            roles: BTreeSet::from(["social_worker".to_owned()]),
        };
        let thu_close = "2026-03-05T17:00:00Z";
        let held = |n: Notice, now: &str| {
            holds(&opt, &cal(), &[n], at(now))
                .into_iter()
                .map(|h| h.until)
                .collect::<Vec<_>>()
        };
        let wed = "2026-03-04T17:00:00Z";
        let reminder = item(Kind::Reminder, "KN-1", "social_worker", (wed, thu_close));
        assert_eq!(held(reminder.clone(), wed), [at("2026-03-05T09:00:00Z")]);
        let by_address = item(Kind::Reminder, "KN-1", "tm", (wed, thu_close));
        assert_eq!(held(by_address, wed), [at("2026-03-05T09:00:00Z")]);
        let other = item(Kind::Reminder, "KN-1", "conference_chair", (wed, thu_close));
        assert!(held(other, wed).is_empty(), "not opted in");
        for kind in [
            Kind::Overdue,
            Kind::OverdueEscalation,
            Kind::CauseForConcern,
            Kind::EscalationStage,
        ] {
            let n = item(kind, "KN-1", "social_worker", (wed, thu_close));
            assert!(held(n, wed).is_empty(), "{kind} is never held");
        }
        let mut urgent = reminder;
        urgent.urgent = true;
        assert!(held(urgent, wed).is_empty(), "urgent mail is never held");
        // "Due today", decided by the daemon's pass a moment after 09:00: that morning's digest.
        let thu = "2026-03-05T09:00:00.300Z";
        let due = item(Kind::Due, "KN-1", "social_worker", (thu, thu_close));
        assert_eq!(held(due, thu), [at("2026-03-05T09:00:00Z")]);
        // Decided at 10:00: the next digest (Friday) is after its deadline, so it goes alone.
        let ten = "2026-03-05T10:00:00Z";
        let due = item(Kind::Due, "KN-1", "social_worker", (ten, thu_close));
        assert!(held(due, ten).is_empty());
    }

    #[test]
    fn a_digests_items_are_grouped_by_case_in_order_of_deadline() {
        let a = item(
            Kind::Due,
            "KN-2",
            "social_worker",
            ("2026-03-05T09:00:00Z", "2026-03-05T17:00:00Z"),
        );
        let b = item(
            Kind::Reminder,
            "KN-1",
            "social_worker",
            ("2026-03-05T09:00:00Z", "2026-03-09T17:00:00Z"),
        );
        let c = item(
            Kind::Reminder,
            "KN-1",
            "social_worker",
            ("2026-03-05T09:00:00Z", "2026-03-06T17:00:00Z"),
        );
        let all = [a.clone(), b.clone(), c.clone()];
        let groups = by_case(&all);
        let keys: Vec<(String, Vec<&str>)> = groups
            .iter()
            .map(|(case, list)| (case.clone(), list.iter().map(|n| n.key.as_str()).collect()))
            .collect();
        assert_eq!(
            keys,
            [
                ("KN-1".to_owned(), vec![c.key.as_str(), b.key.as_str()]),
                ("KN-2".to_owned(), vec![a.key.as_str()])
            ]
        );
        let (fresh, stale) = split_stale(vec![(1, a), (2, b)], at("2026-03-05T17:00:00Z"));
        assert_eq!((fresh.len(), stale), (1, vec![1]));
    }

    #[test]
    fn digests_wait_for_the_pass_of_their_instant_but_not_more_than_an_hour() {
        let now = at("2026-03-03T09:00:30Z");
        assert_eq!(
            ready_by(now, Some(at("2026-03-03T09:00:00Z"))),
            at("2026-03-03T09:00:00Z")
        );
        assert_eq!(
            ready_by(now, Some(at("2026-03-03T08:00:00Z"))),
            at("2026-03-03T08:00:30Z")
        );
        assert_eq!(ready_by(now, Some(at("2026-03-04T09:00:00Z"))), now);
        assert_eq!(ready_by(now, None), at("2026-03-03T08:00:30Z"));
    }
}
