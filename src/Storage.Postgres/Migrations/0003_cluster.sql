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
