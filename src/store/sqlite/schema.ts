/**
 * SQLite schema, as numbered migrations. The `meta` table records the schema version;
 * a database newer than the code is refused instead of being misread.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    job_id     TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    dataset    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  -- Every number ever handed out, so none is handed out twice, even after its server is deleted.
  CREATE TABLE server_numbers (
    number     INTEGER PRIMARY KEY,
    claimed_at TEXT NOT NULL
  );
  CREATE TABLE servers (
    server_id     TEXT PRIMARY KEY,
    number        INTEGER NOT NULL UNIQUE,
    job_id        TEXT NOT NULL,
    model         TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('job', 'temp')),
    state         TEXT NOT NULL,
    reason        TEXT,
    runtime       TEXT NOT NULL,
    worker_name   TEXT NOT NULL,
    worker_id     TEXT,
    endpoint      TEXT,
    version       INTEGER NOT NULL,
    restarts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    loaded_at     TEXT,
    last_used_at  TEXT,
    terminated_at TEXT
  );
  CREATE INDEX servers_by_job ON servers (job_id, kind, number);
  CREATE INDEX servers_by_state ON servers (state);
  CREATE TABLE operations (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    server_id    TEXT,
    status       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    steps        TEXT NOT NULL,
    warnings     TEXT NOT NULL,
    error        TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    duration_ms  REAL
  );
  CREATE INDEX operations_by_job ON operations (job_id, seq);
  CREATE INDEX operations_by_status ON operations (status);
  CREATE INDEX operations_by_server ON operations (server_id);
  `,
  // Who asked for each operation; records from before keys existed say `unknown`.
  `
  ALTER TABLE operations ADD COLUMN caller TEXT NOT NULL DEFAULT 'unknown';
  `,
  // Replicas per job: bounds, the count the router keeps now, the autoscaler's target.
  // Jobs from before replicas existed keep the original one server.
  `
  ALTER TABLE jobs ADD COLUMN replicas_min INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE jobs ADD COLUMN replicas_max INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE jobs ADD COLUMN desired_replicas INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE jobs ADD COLUMN scale_target REAL;
  `,
  // Placement (#26): jobs and servers from before it are dedicated, as they were.
  `
  ALTER TABLE jobs ADD COLUMN placement TEXT NOT NULL DEFAULT 'dedicated';
  ALTER TABLE servers ADD COLUMN placement TEXT NOT NULL DEFAULT 'dedicated';
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
