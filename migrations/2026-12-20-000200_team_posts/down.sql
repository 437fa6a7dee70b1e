DROP INDEX IF EXISTS notices_urgent;
DROP TABLE IF EXISTS team_posts;
