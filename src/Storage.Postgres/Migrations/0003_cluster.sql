-- Presence schema, version 3: cluster membership. Statuses are stored as numbers (SiloStatus in
-- Presence.Runtime.Cluster): 0 joining, 1 active, 2 leaving, 3 dead. Never renumber them.

-- One row per silo process (a restarted silo is a new row: silo ids are never reused). A silo refreshes its
-- row every membership round; a row older than the silo timeout is declared dead by a conditional update.
CREATE TABLE presence_silos (
    silo_id           text PRIMARY KEY,
    address           text NOT NULL,
    generation        bigint NOT NULL,
    status            smallint NOT NULL,
    started_at        timestamptz NOT NULL,
    last_heartbeat_at timestamptz NOT NULL,
    devices           bigint NOT NULL DEFAULT 0
);

-- The fence now takes FOR KEY SHARE row locks instead of FOR SHARE: a lease renewal (an UPDATE of lease_expires_at,
-- which takes FOR NO KEY UPDATE in whatever order it scans) no longer conflicts with writers' fences, so the two can
-- neither wait for nor deadlock with each other. Taking a partition over still locks its row FOR UPDATE, which
-- conflicts with FOR KEY SHARE: it waits for (or skips) writers holding the old epoch, exactly as before.
CREATE OR REPLACE FUNCTION presence_fence(parts int[], epochs bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    stale int[];
BEGIN
    PERFORM 1 FROM presence_partitions WHERE partition = ANY (parts) ORDER BY partition FOR KEY SHARE;
    SELECT array_agg(w.part ORDER BY w.part) INTO stale
    FROM unnest(parts, epochs) AS w(part, epoch)
    LEFT JOIN presence_partitions p ON p.partition = w.part
    WHERE p.epoch IS DISTINCT FROM w.epoch;
    IF stale IS NOT NULL THEN
        RAISE EXCEPTION 'stale partition epoch: %', array_to_string(stale, ',') USING ERRCODE = 'PR001';
    END IF;
END
$$;
