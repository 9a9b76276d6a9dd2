-- Presence schema, version 2: device secrets and tenant API keys. Secrets and keys are stored only as hashes.

-- A device's secret: the stamp its tokens carry (a new secret gets a new random stamp, which revokes earlier
-- tokens) and the secret's slow hash (format version, iterations, salt, PBKDF2-SHA256 output). Written with the
-- device's durable changes, never by write-behind.
ALTER TABLE presence_devices
    ADD COLUMN secret_stamp bigint,
    ADD COLUMN secret_hash  bytea;

-- Tenant-scoped API keys. key_hash is SHA-256 of the whole key (256 random bits, so a fast hash suffices);
-- a revoked key keeps its row (revoked_at set) so that its id is never reused.
CREATE TABLE presence_api_keys (
    key_id     text COLLATE "C" PRIMARY KEY,
    tenant_id  text COLLATE "C" NOT NULL,
    role       smallint NOT NULL,
    name       text NOT NULL,
    key_hash   bytea NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE INDEX presence_api_keys_tenant ON presence_api_keys (tenant_id);
