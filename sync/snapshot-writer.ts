/**
 * Builds one lakeside snapshot on a given head: writes the manifests and the manifest
 * list it needs and returns the commit's requirements and updates.
 *
 * Files (all under `<table location>/metadata/`, never overwritten, TableFileIO):
 * - an append's manifest: `lakeside-<agent>-<seq>-s<schema>.avro`, deterministic
 *   (same files, same bytes), so it is written once and reused by every retry of the
 *   commit; its entries are ADDED with inherited snapshot id and sequence numbers;
 * - rewritten manifests (replace, delete, merge): `lakeside-<agent>-<seq>-<snapshot>-r<i>.avro`;
 *   entries kept are EXISTING with their snapshot id and sequence numbers made
 *   explicit, removed ones DELETED;
 * - the manifest list: `snap-<snapshot>-lakeside-<agent>-<seq>.avro`, per attempt: the
 *   head's manifests copied unchanged, minus the rewritten ones, plus ours.
 * The requirements pin the table uuid and the head the list was built on, so a commit
 * built on a stale head fails with a conflict and is rebuilt, never applied on top.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { TableRequirement, TableUpdate, Snapshot, LoadedTable, IcebergSchema, PartitionSpec } from './iceberg/metadata.ts';
import { refHead } from './iceberg/metadata.ts';
import { ENTRY_STATUS, readManifest, writeManifest, type ManifestEntry } from './iceberg/manifest.ts';
import { manifestListEntryFor, readManifestList, writeManifestList, type ManifestFile } from './iceberg/manifest-list.ts';
import type { DataFile } from './iceberg/data-file.ts';
import { markerSummary, type AgentIdentity } from './markers.ts';
import type { TableFileIO } from './table-io.ts';

export interface BuiltCommit {
  snapshotId: bigint;
  requirements: TableRequirement[];
  updates: TableUpdate[];
}

export interface RewriteRequest {
  /** Data file paths to remove from the table. */
  remove: Set<string>;
  /** New paths by the path they replace (the cold copy of a warm file): the entry is carried over with the new path. */
  replacements: Map<string, string>;
  /** Also fold every manifest this agent wrote into one (manifest upkeep). */
  mergeOwnManifests: boolean;
  operation: 'replace' | 'delete';
}

export interface RewriteResult extends BuiltCommit {
  /** Paths of `remove` found (and removed) in the table. */
  removed: Set<string>;
  /** How many of this agent's manifests were folded into one. */
  mergedManifests: number;
}

const { ADDED, EXISTING, DELETED } = ENTRY_STATUS;

/** A positive int64 snapshot id. */
export function newSnapshotId(): bigint {
  return randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn || 1n;
}

function currentSchema(table: LoadedTable): IcebergSchema {
  const m = table.metadata;
  const schema = m.schemas.find((s) => s['schema-id'] === m['current-schema-id']);
  if (!schema) throw new Error(`table ${m.location}: current schema missing`);
  return schema;
}

function defaultSpec(table: LoadedTable): PartitionSpec {
  const m = table.metadata;
  const spec = m['partition-specs'].find((s) => s['spec-id'] === m['default-spec-id']);
  if (!spec) throw new Error(`table ${m.location}: default partition spec missing`);
  return spec;
}

/** Decoded manifests kept at most (manifests never change once written, so a path's entries are final). */
const MANIFEST_CACHE_ENTRIES = 512;

export class SnapshotWriter {
  private readonly io: TableFileIO;
  private readonly identity: AgentIdentity;
  /**
   * Manifest entries by path, least recently used first out. A rewrite retried after a
   * conflict (a manifest merge reads every manifest of this agent) reads only the
   * manifests that are new since its last attempt.
   */
  private readonly manifests = new Map<string, ManifestEntry[]>();

  constructor(io: TableFileIO, identity: AgentIdentity) {
    this.io = io;
    this.identity = identity;
  }

  private async manifestEntries(path: string): Promise<ManifestEntry[]> {
    const cached = this.manifests.get(path);
    if (cached) {
      this.manifests.delete(path);
      this.manifests.set(path, cached);
      return cached;
    }
    const { entries } = readManifest(await this.io.read(path));
    this.manifests.set(path, entries);
    if (this.manifests.size > MANIFEST_CACHE_ENTRIES) this.manifests.delete(this.manifests.keys().next().value!);
    return entries;
  }

  /** This agent's manifests carry this in their file name. */
  ownManifestMark(): string {
    return `/lakeside-${this.identity.agentId}-`;
  }

  /** How many manifests of the table's current snapshot this agent wrote. */
  async ownManifestCount(table: LoadedTable): Promise<number> {
    const mark = this.ownManifestMark();
    return (await this.headManifests(refHead(table.metadata))).filter((m) => m.manifest_path.includes(mark)).length;
  }

  private metadataDir(table: LoadedTable): string {
    return `${table.metadata.location.replace(/\/+$/, '')}/metadata`;
  }

  private async headManifests(head: Snapshot | null): Promise<ManifestFile[]> {
    if (!head) return [];
    return readManifestList(await this.io.read(head['manifest-list'])).manifests;
  }

  /** An append of `files` as commit `seq`. */
  async append(table: LoadedTable, seq: number, files: DataFile[]): Promise<BuiltCommit> {
    const schema = currentSchema(table);
    const spec = defaultSpec(table);
    const entries: ManifestEntry[] = files.map((dataFile) => ({ status: ADDED, snapshot_id: null, sequence_number: null, file_sequence_number: null, data_file: dataFile }));
    const manifestPath = `${this.metadataDir(table)}/lakeside-${this.identity.agentId}-${seq}-s${schema['schema-id']}.avro`;
    const manifestBytes = writeManifest({ schema, spec, entries });
    await this.io.writeOnce(manifestPath, manifestBytes);
    return this.finish(table, seq, 'append', { keep: (await this.headManifests(refHead(table.metadata))), added: [{ path: manifestPath, length: manifestBytes.length, entries }] }, {
      'added-data-files': files.length,
      'added-records': sum(files.map((f) => f.record_count)),
      'added-files-size': sum(files.map((f) => f.file_size_in_bytes)),
    });
  }

  /** A replace or delete: removes `remove` paths, adds `add` files, optionally merges our manifests. */
  async rewrite(table: LoadedTable, seq: number, request: RewriteRequest): Promise<RewriteResult> {
    const schema = currentSchema(table);
    const spec = defaultSpec(table);
    const snapshotId = newSnapshotId();
    const listed = await this.headManifests(refHead(table.metadata));
    const mark = this.ownManifestMark();
    const keep: ManifestFile[] = [];
    const carried: ManifestEntry[] = [];
    const removed = new Set<string>();
    const removedFiles = new Map<string, DataFile>();
    let merged = 0;
    let deletedFiles = 0;
    let deletedRecords = 0;
    let deletedSize = 0;
    const rewrittenOutputs: { entries: ManifestEntry[] }[] = [];
    // Our own manifests first: the files we replace or delete are almost always there.
    const ordered = [...listed.filter((m) => m.manifest_path.includes(mark)), ...listed.filter((m) => !m.manifest_path.includes(mark))];
    for (const listEntry of ordered) {
      const own = listEntry.manifest_path.includes(mark);
      const mayHoldTargets = request.remove.size > removed.size && listEntry.content === 0;
      if (!(own && request.mergeOwnManifests) && !mayHoldTargets) {
        keep.push(listEntry);
        continue;
      }
      const entries = await this.manifestEntries(listEntry.manifest_path);
      const live = entries.filter((e) => e.status !== DELETED);
      const hits = live.filter((e) => request.remove.has(e.data_file.file_path));
      if (hits.length === 0 && !(own && request.mergeOwnManifests)) {
        keep.push(listEntry);
        continue;
      }
      const explicit = (e: ManifestEntry): ManifestEntry => ({
        ...e,
        snapshot_id: e.snapshot_id ?? listEntry.added_snapshot_id,
        sequence_number: e.sequence_number ?? listEntry.sequence_number,
        file_sequence_number: e.file_sequence_number ?? listEntry.sequence_number,
      });
      const out: ManifestEntry[] = [];
      for (const e of live) {
        if (request.remove.has(e.data_file.file_path)) {
          removed.add(e.data_file.file_path);
          removedFiles.set(e.data_file.file_path, e.data_file);
          deletedFiles++;
          deletedRecords += Number(e.data_file.record_count);
          deletedSize += Number(e.data_file.file_size_in_bytes);
          out.push({ ...explicit(e), status: DELETED, snapshot_id: snapshotId });
        } else {
          out.push({ ...explicit(e), status: EXISTING });
        }
      }
      if (own && request.mergeOwnManifests) {
        merged++;
        for (const entry of out) carried.push(entry); // a loop: a manifest can hold more entries than a spread's argument limit
      } else {
        rewrittenOutputs.push({ entries: out });
      }
    }
    if (carried.length > 0) rewrittenOutputs.push({ entries: carried });
    const adding = [...removed].flatMap((path) => {
      const replacement = request.replacements.get(path);
      const original = removedFiles.get(path);
      return replacement && original ? [{ ...original, file_path: replacement }] : [];
    });
    const asAdded = (dataFile: DataFile): ManifestEntry => ({ status: ADDED, snapshot_id: null, sequence_number: null, file_sequence_number: null, data_file: dataFile });
    if (rewrittenOutputs.length === 0) rewrittenOutputs.push({ entries: [] });
    for (const dataFile of adding) rewrittenOutputs[0]!.entries.push(asAdded(dataFile));
    const added: { path: string; length: number; entries: ManifestEntry[] }[] = [];
    const dir = this.metadataDir(table);
    for (let i = 0; i < rewrittenOutputs.length; i++) {
      const entries = rewrittenOutputs[i]!.entries;
      if (entries.length === 0) continue;
      const bytes = writeManifest({ schema, spec, entries });
      // Named by content: a merge retried on a new head with the same manifests of this
      // agent writes nothing again (the bytes are deterministic; DELETED entries carry
      // the attempt's snapshot id, so a replace or delete gets a new file per attempt).
      const path = `${dir}/lakeside-${this.identity.agentId}-${seq}-${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}-r${i}.avro`;
      await this.io.writeOnce(path, bytes);
      added.push({ path, length: bytes.length, entries });
    }
    const built = await this.finish(table, seq, request.operation, { keep, added }, {
      'added-data-files': adding.length,
      'added-records': sum(adding.map((f) => f.record_count)),
      'added-files-size': sum(adding.map((f) => f.file_size_in_bytes)),
      'deleted-data-files': deletedFiles,
      'deleted-records': deletedRecords,
      'removed-files-size': deletedSize,
    }, snapshotId);
    return { ...built, removed, mergedManifests: merged };
  }

  private async finish(
    table: LoadedTable,
    seq: number,
    operation: Snapshot['summary']['operation'],
    manifests: { keep: ManifestFile[]; added: { path: string; length: number; entries: ManifestEntry[] }[] },
    counts: Record<string, number>,
    snapshotId = newSnapshotId(),
  ): Promise<BuiltCommit> {
    const metadata = table.metadata;
    const head = refHead(metadata);
    const sequenceNumber = metadata['last-sequence-number'] + 1;
    const spec = defaultSpec(table);
    const schema = currentSchema(table);
    const listEntries = [
      ...manifests.added.map((m) =>
        manifestListEntryFor({ path: m.path, length: m.length, schema, spec, entries: m.entries, snapshotId, sequenceNumber: BigInt(sequenceNumber) }),
      ),
      ...manifests.keep,
    ];
    const listPath = `${this.metadataDir(table)}/snap-${snapshotId}-lakeside-${this.identity.agentId}-${seq}.avro`;
    await this.io.writeOnce(listPath, writeManifestList({ snapshotId, parentSnapshotId: head ? head['snapshot-id'] : null, sequenceNumber: BigInt(sequenceNumber) }, listEntries));
    const summary: Snapshot['summary'] = { operation, ...markerSummary(this.identity, seq) };
    for (const [key, value] of Object.entries(counts)) if (value > 0) summary[key] = String(value);
    const totals = totalsAfter(head, counts);
    Object.assign(summary, totals);
    const snapshot: Snapshot = {
      'snapshot-id': snapshotId,
      ...(head ? { 'parent-snapshot-id': head['snapshot-id'] } : {}),
      'sequence-number': sequenceNumber,
      'timestamp-ms': Date.now(),
      'manifest-list': listPath,
      summary,
      'schema-id': metadata['current-schema-id'],
    };
    return {
      snapshotId,
      requirements: [
        { type: 'assert-table-uuid', uuid: metadata['table-uuid'] },
        { type: 'assert-ref-snapshot-id', ref: 'main', 'snapshot-id': head ? head['snapshot-id'] : null },
      ],
      updates: [
        { action: 'add-snapshot', snapshot },
        { action: 'set-snapshot-ref', 'ref-name': 'main', type: 'branch', 'snapshot-id': snapshotId },
      ],
    };
  }
}

function sum(values: (number | bigint)[]): number {
  return values.reduce<number>((n, v) => n + Number(v), 0);
}

/** The standard running totals, when the parent kept them (or there is no parent). */
function totalsAfter(head: Snapshot | null, counts: Record<string, number>): Record<string, string> {
  const parent = (key: string): number | null => {
    if (!head) return 0;
    const v = head.summary[key];
    return v === undefined ? null : Number(v);
  };
  const out: Record<string, string> = {};
  const total = (key: string, added: string, deleted: string): void => {
    const before = parent(key);
    if (before === null || !Number.isFinite(before)) return;
    out[key] = String(before + (counts[added] ?? 0) - (counts[deleted] ?? 0));
  };
  total('total-data-files', 'added-data-files', 'deleted-data-files');
  total('total-records', 'added-records', 'deleted-records');
  total('total-files-size', 'added-files-size', 'removed-files-size');
  if (!head) {
    out['total-delete-files'] = '0';
    out['total-position-deletes'] = '0';
    out['total-equality-deletes'] = '0';
  } else {
    for (const key of ['total-delete-files', 'total-position-deletes', 'total-equality-deletes']) if (head.summary[key] !== undefined) out[key] = head.summary[key]!;
  }
  return out;
}
