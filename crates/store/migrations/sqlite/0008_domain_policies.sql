-- Accord's SQLite schema, version 8: domain policies, per workspace.

CREATE TABLE domain_policies (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    -- `*`, `*.example.com` or `example.com`, as the model spells it.
    pattern      TEXT NOT NULL,
    -- The model's PolicyRules as JSON (its stored format).
    rules        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

-- One policy per pattern in a workspace.
CREATE UNIQUE INDEX domain_policies_pattern ON domain_policies (workspace_id, pattern);
