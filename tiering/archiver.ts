/**
 * Warm → cold, then expiry: after the warm retention (by the file's newest event time;
 * per dataset from the settings in force, settings.ts, read once per pass)
 * a committed object is copied to the cold store (its storage class, same key),
 * verified, handed to the catalog to re-point the table, and only then deleted from
 * warm (`archived`). After the cold retention, when set, it is deleted from cold
 * (`expired`).
 *
 * Invariants (resumable: every step may be repeated after a crash):
 * - The copy goes through a temp file under `<state_dir>/tiering/tmp`, checked against
 *   the tier map's sha256 before the cold put; the cold put verifies like any put.
 * - The warm object is deleted only after the cold object is verified and the catalog
 *   hand-off returned. If warm is already gone (a crash after its delete), the cold
 *   object is verified by head and the step completes.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { failpoint } from '../agent/failpoint.ts';
import type { TieringConfig } from '../config/tiering-schema.ts';
import type { CatalogHandoff } from './catalog-handoff.ts';
import { hashingStream } from './stores/hashing.ts';
import { ObjectNotFoundError, ObjectStoreError, type ObjectStore } from './stores/object-store.ts';
import { anyColdRetention, buildSettings, coldCutoffSql, coldStorageClass, warmCutoffSql, type TieringSettings } from './settings.ts';
import type { TierMap, TierRecord } from './tier-map.ts';
import type { TieringLogger } from './uploader.ts';

export interface ArchiverOptions {
  map: TierMap;
  warm: ObjectStore;
  cold: ObjectStore;
  catalog: CatalogHandoff;
  config: TieringConfig;
  stateDir: string;
  logger: TieringLogger;
  nowMs?: () => number;
  /** The settings in force (a policy swaps them live); default: built from `config`. */
  settings?: () => TieringSettings;
}

export interface ArchiveReport {
  archived: number;
  expired: number;
  failed: number;
}

const BATCH = 100;

export class Archiver {
  private readonly options: ArchiverOptions;
  private readonly nowMs: () => number;
  private readonly tmpDir: string;
  private readonly settings: () => TieringSettings;

  constructor(options: ArchiverOptions) {
    this.options = options;
    if (options.settings) this.settings = options.settings;
    else {
      const fixed = buildSettings(options.config, null);
      this.settings = () => fixed;
    }
    this.nowMs = options.nowMs ?? Date.now;
    this.tmpDir = join(options.stateDir, 'tiering', 'tmp');
  }

  async pass(): Promise<ArchiveReport> {
    const { map } = this.options;
    const settings = this.settings();
    const report: ArchiveReport = { archived: 0, expired: 0, failed: 0 };
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    const failed = new Set<number>();
    const archiveBefore = () => warmCutoffSql(settings, this.nowMs() * 1000);
    for (;;) {
      const batch = map.dueForArchive(archiveBefore(), BATCH + failed.size).filter((r) => !failed.has(r.id));
      if (batch.length === 0) break;
      for (const record of batch) {
        try {
          await this.archiveOne(record, coldStorageClass(settings, record.kind === 'data' ? record.dataset : null));
          report.archived++;
        } catch (error) {
          failed.add(record.id);
          report.failed++;
          this.options.logger.warn({ code: 'ARCHIVE_FAILED', key: record.object_key, err: (error as Error).message }, 'archive to cold failed; retried next pass');
        }
      }
    }
    if (anyColdRetention(settings)) {
      const expireBefore = coldCutoffSql(settings, this.nowMs() * 1000);
      const refused = new Set<number>();
      for (;;) {
        const batch = map.dueForExpiry(expireBefore, BATCH + refused.size).filter((r) => !refused.has(r.id));
        if (batch.length === 0) break;
        for (const record of batch) {
          try {
            // The table stops pointing at the file (a delete commit) before the object goes.
            await this.options.catalog.expired?.(record);
          } catch (error) {
            refused.add(record.id);
            report.failed++;
            this.options.logger.warn({ code: 'EXPIRE_FAILED', key: record.object_key, err: (error as Error).message }, 'catalog delete commit failed; expiry retried next pass');
            continue;
          }
          await this.options.cold.delete(record.object_key);
          map.markExpired(record.id, this.nowMs() * 1000);
          report.expired++;
        }
      }
    }
    return report;
  }

  private async archiveOne(record: TierRecord, storageClass: string | undefined): Promise<void> {
    const { warm, cold, catalog, map } = this.options;
    const temp = join(this.tmpDir, `${record.id}-${randomBytes(4).toString('hex')}`);
    try {
      let copied = false;
      try {
        await this.download(record, temp);
        copied = true;
      } catch (error) {
        if (!(error instanceof ObjectNotFoundError)) throw error;
      }
      if (copied) {
        await cold.put(record.object_key, { path: temp, sizeBytes: record.size_bytes, sha256: record.sha256, ...(storageClass ? { storageClass } : {}) });
        failpoint('tiering.after-cold-put', [{ path: record.local_path }]); // crash tests: in cold (verified), warm not yet deleted
      } else {
        // Warm is gone: only acceptable if a previous pass already put it in cold.
        const info = await cold.head(record.object_key);
        if (!info || info.sizeBytes !== record.size_bytes || (info.sha256 !== null && info.sha256 !== record.sha256)) {
          throw new ObjectStoreError('ARCHIVE_SOURCE_MISSING', `${record.object_key} is in neither warm nor cold`, false);
        }
      }
      await catalog.archived(record, cold.description);
      await warm.delete(record.object_key);
      failpoint('tiering.after-warm-delete', [{ path: record.local_path }]); // crash tests: gone from warm, not yet marked archived
      map.markArchived(record.id, this.nowMs() * 1000);
    } finally {
      await unlink(temp).catch(() => {});
    }
  }

  private async download(record: TierRecord, temp: string): Promise<void> {
    const hashing = hashingStream();
    await pipeline(await this.options.warm.get(record.object_key), hashing.stream, createWriteStream(temp));
    const sha256 = hashing.digest();
    const size = hashing.bytes();
    if (sha256 !== record.sha256 || size !== record.size_bytes) {
      throw new ObjectStoreError('CHECKSUM_MISMATCH', `warm object ${record.object_key} has sha256 ${sha256} (${size} bytes), the tier map says ${record.sha256}`, false);
    }
  }
}
