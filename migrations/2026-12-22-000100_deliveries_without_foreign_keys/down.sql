ALTER TABLE deliveries ADD CONSTRAINT deliveries_notice_id_fkey
    FOREIGN KEY (notice_id) REFERENCES notices (id) ON DELETE CASCADE;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_digest_id_fkey
    FOREIGN KEY (digest_id) REFERENCES notices (id) ON DELETE SET NULL;
