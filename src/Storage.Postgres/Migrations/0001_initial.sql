-- Presence schema, version 1. Enumerations are stored as their numbers (DeviceStatus, StatusReason,
-- DeviceEventType in Presence.Grains.Abstractions): never renumber them.

CREATE TABLE presence_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- One row per partition: its owner and lease epoch. Every state write carries the epoch it was made under,
-- and presence_fence() rejects a transaction whose epoch is no longer current.
CREATE TABLE presence_partitions (
    partition        int PRIMARY KEY,
    owner            text,
    epoch            bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz
);

CREATE TABLE presence_devices (
    tenant_id          text COLLATE "C" NOT NULL,
    device_id          text COLLATE "C" NOT NULL,
    partition          int NOT NULL,
    epoch              bigint NOT NULL,
    device_name        text NOT NULL,
    platform           text,
    app_version        text,
    status             smallint NOT NULL,
    first_seen_at      timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    status_changed_at  timestamptz NOT NULL,
    session_id         bigint NOT NULL,
    session_started_at timestamptz NOT NULL,
    session_heartbeats bigint NOT NULL,
    metrics            jsonb NOT NULL,
    containers         jsonb NOT NULL,
    labels             jsonb NOT NULL,
    timeout_ms         bigint NOT NULL,
    version            bigint NOT NULL,
    sequence           bigint NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
) WITH (fillfactor = 80); -- room for HOT updates: write-behind rewrites every online device's row

-- What a new owner must watch after a restart or take-over.
CREATE INDEX presence_devices_online ON presence_devices (partition) WHERE status = 1;

-- Ended presence sessions (uptime history); the current one lives in the device row.
CREATE TABLE presence_sessions (
    tenant_id  text COLLATE "C" NOT NULL,
    device_id  text COLLATE "C" NOT NULL,
    ended_at   timestamptz NOT NULL,
    session_id bigint NOT NULL,
    started_at timestamptz NOT NULL,
    end_reason smallint NOT NULL,
    heartbeats bigint NOT NULL,
    PRIMARY KEY (tenant_id, device_id, ended_at, session_id)
);

CREATE INDEX presence_sessions_ended ON presence_sessions (ended_at);

-- The event log's one row: its epoch (part of every cursor), the last position appended, and the last
-- position deleted by retention. Appenders update this row, so appends are serialised in commit order and
-- positions are dense: a reader that sees position p sees every position before it.
CREATE TABLE presence_log (
    id         int PRIMARY KEY CHECK (id = 1),
    epoch      bigint NOT NULL,
    head       bigint NOT NULL,
    trimmed_to bigint NOT NULL
);

INSERT INTO presence_log (id, epoch, head, trimmed_to)
VALUES (1, 1 + floor(random() * 281474976710655)::bigint, 0, 0);

CREATE TABLE presence_events (
    position        bigint PRIMARY KEY,
    tenant_id       text COLLATE "C" NOT NULL,
    device_id       text COLLATE "C" NOT NULL,
    type            smallint NOT NULL,
    sequence        bigint NOT NULL,
    time            timestamptz NOT NULL,
    status          smallint,
    previous_status smallint,
    reason          smallint,
    last_seen_at    timestamptz,
    session_id      bigint,
    device_name     text,
    platform        text,
    command_id      text,
    ok              boolean,
    output          text
);

CREATE INDEX presence_events_tenant ON presence_events (tenant_id, position);
CREATE INDEX presence_events_device ON presence_events (tenant_id, device_id, position);

-- Locks the partitions a transaction writes (in partition order, so concurrent writers cannot deadlock) and
-- raises PR001 listing those whose epoch is not the one the writer holds (in the message: clients redact details). A take-over (which updates the
-- epoch) waits for writers holding these locks, and every later write of the old owner fails here.
CREATE FUNCTION presence_fence(parts int[], epochs bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    stale int[];
BEGIN
    PERFORM 1 FROM presence_partitions WHERE partition = ANY (parts) ORDER BY partition FOR SHARE;
    SELECT array_agg(w.part ORDER BY w.part) INTO stale
    FROM unnest(parts, epochs) AS w(part, epoch)
    LEFT JOIN presence_partitions p ON p.partition = w.part
    WHERE p.epoch IS DISTINCT FROM w.epoch;
    IF stale IS NOT NULL THEN
        RAISE EXCEPTION 'stale partition epoch: %', array_to_string(stale, ',') USING ERRCODE = 'PR001';
    END IF;
END
$$;
