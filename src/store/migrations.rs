//! The database schema, as an ordered list of migrations. `PRAGMA user_version` records how
//! many have been applied; each runs in its own transaction. Never edit a shipped migration:
//! append a new one.

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: everything culturetune 0.1 stores.
    r#"
    CREATE TABLE models (
        sha256       TEXT PRIMARY KEY,
        path         TEXT NOT NULL,
        name         TEXT NOT NULL,
        architecture TEXT NOT NULL,
        n_embd       INTEGER NOT NULL,
        file_size    INTEGER NOT NULL,
        added_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );
    CREATE TABLE calibrations (
        id           INTEGER PRIMARY KEY,
        key          TEXT NOT NULL UNIQUE,   -- model sha, survey, panel, procedure (JSON)
        model_sha256 TEXT NOT NULL REFERENCES models(sha256),
        survey       TEXT NOT NULL,
        regions      TEXT NOT NULL,          -- JSON array of region codes
        constants    TEXT NOT NULL,          -- JSON {"PDI": .., ...}
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY,
        region       TEXT NOT NULL,
        survey       TEXT NOT NULL,
        method       TEXT NOT NULL,
        model_sha256 TEXT NOT NULL REFERENCES models(sha256),
        config       TEXT NOT NULL,          -- full TuneConfig as JSON
        seed         INTEGER NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('running','done','cancelled','interrupted','failed')),
        pid          INTEGER,
        error        TEXT,
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );
    CREATE TABLE checkpoints (
        run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        generation   INTEGER NOT NULL,
        evals        INTEGER NOT NULL,
        best_loss    REAL NOT NULL,
        mean_loss    REAL NOT NULL,
        best_scores  TEXT NOT NULL,          -- JSON indices of the best candidate
        state        TEXT NOT NULL,          -- serialized optimizer state
        elapsed_s    REAL NOT NULL,
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
        PRIMARY KEY (run_id, generation)
    );
    CREATE TABLE prompts (
        id           INTEGER PRIMARY KEY,
        run_id       INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        model_sha256 TEXT NOT NULL,
        k            INTEGER NOT NULL,
        n_embd       INTEGER NOT NULL,
        rows         BLOB NOT NULL,          -- k * n_embd little-endian f32
        card         TEXT NOT NULL,          -- JSON metadata (the export card)
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );
    CREATE TABLE evaluations (
        id           INTEGER PRIMARY KEY,
        run_id       INTEGER REFERENCES runs(id) ON DELETE CASCADE,
        model_sha256 TEXT NOT NULL,
        method       TEXT NOT NULL,          -- naive | icl | tuned
        survey       TEXT NOT NULL,
        region       TEXT NOT NULL,
        constants    TEXT NOT NULL,
        indices      TEXT NOT NULL,
        loss         REAL NOT NULL,
        loss_mean    REAL NOT NULL,
        dims_used    INTEGER NOT NULL,
        digit_mass   REAL NOT NULL,
        created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
    );
    CREATE INDEX evaluations_by_region ON evaluations(region, survey, method);
    "#,
    // 2: the per-item fit of a population run's evaluations (JSON; NULL for region runs).
    r#"
    ALTER TABLE evaluations ADD COLUMN items TEXT;
    "#,
];
