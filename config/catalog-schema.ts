/**
 * The `catalog` section: where uploaded files are committed (sync/).
 *
 * - `type: rest`: an Iceberg REST catalog (Polaris, Nessie, Glue, Unity, Lakekeeper,
 *   the Apache fixture) at `uri`. Auth: a bearer token, or OAuth2 client credentials
 *   against `oauth2.token_endpoint`; both only as secret references.
 * - `type: filesystem` (the default whenever `tiering.warm` is set): the table
 *   metadata is written by the agent itself under `<warm store>/<root_prefix>/`, one
 *   table per dataset, a commit being the conditional create of the next metadata
 *   version. What `lakeside demo` uses.
 * - `type: none`: no catalog; an uploaded file counts as committed.
 * Invariant: secrets (token, client secret, header values that are secret) are
 * `${env:…}` / `${file:…}` references, never inline.
 */
import { z } from 'zod';

const positiveInt = z.number().int().positive();
const secretRef = z
  .string()
  .regex(/^\$\{(env|file):([^}]+)\}$/, 'secrets must be a reference, ${env:NAME} or ${file:/path}, never written inline');
const namespacePart = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a namespace level of letters, digits and _');

const restSchema = z.strictObject({
  /** The catalog's base URL (without `/v1`), e.g. https://catalog.example.com/api/catalog. */
  uri: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
  /** Sent as `?warehouse=` to `/v1/config` (Polaris, Lakekeeper: the catalog name). */
  warehouse: z.string().min(1).optional(),
  /** A static bearer token. */
  token: secretRef.optional(),
  /** OAuth2 client credentials; tokens are fetched and refreshed before they expire. */
  oauth2: z
    .strictObject({
      token_endpoint: z.url({ protocol: /^https?$/ }),
      client_id: z.string().min(1),
      client_secret: secretRef,
      scope: z.string().min(1).optional(),
    })
    .optional(),
  /** Extra request headers (e.g. `X-Iceberg-Access-Delegation`); values may be secret references. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/), z.string()).default({}),
  /** PEM file of extra CA certificates for https. */
  ca_file: z.string().min(1).optional(),
  /** A request with no answer for this long fails (an unknown outcome for a commit). */
  request_timeout_ms: positiveInt.default(30_000),
}).superRefine((rest, ctx) => {
  if (rest.token !== undefined && rest.oauth2 !== undefined) ctx.addIssue({ code: 'custom', path: ['oauth2'], message: 'either token or oauth2, not both' });
});

export const catalogSchema = z
  .strictObject({
    type: z.enum(['rest', 'filesystem', 'none']).default('filesystem'),
    rest: restSchema.optional(),
    /** filesystem: the key prefix under the warm store where table metadata lives. */
    root_prefix: z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'expected a relative key prefix such as iceberg').default('iceberg'),
    /** The namespace of the tables (one table per dataset, named after it). */
    namespace: z.array(namespacePart).min(1).default(['lakeside']),
    /** Extra properties of tables lakeside creates. */
    table_properties: z.record(z.string(), z.string()).default({}),
    /** At most one commit per table per this many seconds (files batch up in between). */
    commit_interval_seconds: z.number().positive().default(10),
    /** Files per commit at most; a bigger backlog takes several commits. */
    max_files_per_commit: positiveInt.default(500),
    /** Attempts of one commit on conflicts (409) before it waits for the next interval. */
    max_conflict_retries: positiveInt.default(25),
    /** When this agent's manifests in a table outnumber this, they are merged into one. */
    manifest_merge_threshold: positiveInt.min(2).default(100),
    /**
     * Hand this agent id's tables over from another instance (a replaced machine whose
     * state directory is gone): its instance id, as the CATALOG_FENCED error names it.
     */
    take_over_from: z.string().uuid().optional(),
    /** How often the tier map is reconciled with the catalog (also at start). */
    reconcile_interval_minutes: positiveInt.default(60),
    /**
     * filesystem only: snapshots older than this leave the table metadata at the next
     * commit (the newest min_snapshots_kept, the ref heads and each agent's newest stay);
     * every commit rewrites the metadata, so without it the file grows without end.
     */
    snapshot_retention_hours: z.number().positive().default(6),
    min_snapshots_kept: positiveInt.default(100),
  })
  .superRefine((catalog, ctx) => {
    if (catalog.type === 'rest' && catalog.rest === undefined) ctx.addIssue({ code: 'custom', path: ['rest'], message: 'type rest needs a rest section (uri at least)' });
    if (catalog.type !== 'rest' && catalog.rest !== undefined) ctx.addIssue({ code: 'custom', path: ['rest'], message: 'applies to type rest only' });
  });

export type CatalogConfig = z.infer<typeof catalogSchema>;
export type RestCatalogConfig = z.infer<typeof restSchema>;
