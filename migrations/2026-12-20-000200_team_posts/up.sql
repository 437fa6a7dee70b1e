-- What cpwatch posts to a partnership's team channel (a Teams or Slack incoming webhook): the
-- daily overdue summary and immediate-risk alerts. One row per post, unique by key, so each is
-- posted once; claimed with a lease like a delivery. The text names nobody and no case.
CREATE TABLE team_posts (
    id               BIGSERIAL PRIMARY KEY,
    partnership_id   TEXT NOT NULL,
    -- {partnership}/team/summary/{local date} or {partnership}/team/alert/{notice key}
    key              TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('summary', 'alert')),
    text             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'failed', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    locked_until     TIMESTAMPTZ,
    claimed_by       TEXT,
    last_error       TEXT,
    sent_at          TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX team_posts_pending ON team_posts (next_attempt_at, id) WHERE status = 'pending';

-- The alerts look for immediate-risk notices queued in the last day.
CREATE INDEX notices_urgent ON notices (created_at) WHERE urgent;
