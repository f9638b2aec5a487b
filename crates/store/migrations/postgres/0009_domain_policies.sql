-- Accord's PostgreSQL schema, version 9: domain policies, per workspace.

CREATE TABLE domain_policies (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    -- `*`, `*.example.com` or `example.com`, as the model spells it.
    pattern      text NOT NULL,
    -- The model's PolicyRules (its stored format).
    rules        jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- One policy per pattern in a workspace.
CREATE UNIQUE INDEX domain_policies_pattern ON domain_policies (workspace_id, pattern);
