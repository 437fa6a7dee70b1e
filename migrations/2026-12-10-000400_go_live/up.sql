-- When a partnership went live with cpwatch (set by `cpwatch import --go-live`), and when the
-- go-live pass summarised, for each team manager, what was already overdue on their cases.
CREATE TABLE partnership_go_live (
    partnership_id  TEXT PRIMARY KEY REFERENCES partnerships (id) ON DELETE CASCADE,
    go_live_at      TIMESTAMPTZ NOT NULL,
    summarised_at   TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
