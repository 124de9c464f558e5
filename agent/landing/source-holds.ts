/**
 * Held batches (`source_holds`, landing/schema.ts): a Kafka batch lands *held* until
 * its offset commit to Kafka is known to have happened. This module is the writer's
 * side of it, on the writer's connection.
 *
 * Invariants:
 * - A hold is written in the transaction of the rows it holds: one row per part (a
 *   dataset's landed rows `first_id..last_id`, `#quarantine` entries, `` the offsets
 *   `first_offset..next_offset - 1`). Ids are contiguous: the writer is the only
 *   inserter and flushes its row buffers before and after the held items, so the
 *   AUTOINCREMENT sequence moves by exactly the held rows in between.
 * - The seal stops below a dataset's lowest held id (schema.ts `heldFloor`), so held
 *   rows are never in a file and can still be deleted.
 * - `release`: the batch's commit happened (its source saw it answered); the hold goes.
 *   Not durable on purpose (synchronous=OFF: no fsync of its own): a release lost in a
 *   crash leaves a hold that the next settle finds committed.
 * - `settle`: kept holds go; dropped holds take their rows, their rows' dedupe keys and
 *   their quarantine entries with them and lower their stream's watermark to their first
 *   offset, all in one durable transaction, so the records are landed again (not taken
 *   for duplicates) by whoever reads the partition next.
 */
import type Database from 'better-sqlite3';
import type { Dataset, RowValue } from '../../config/dataset.ts';
import { dedupeKeyOfStored } from './dedupe-key.ts';
import { landedTable, sealedThrough } from './schema.ts';

/** Items `from..to-1` of one commit are one held batch. */
export interface HoldSpan {
  /** Unique per batch (the source's tenure and a counter). */
  id: string;
  /** The partition ownership the batch was landed under (kafka-handover.ts). */
  tenure: string;
  from: number;
  to: number;
}

/** A held batch, as listed for settling. */
export interface HeldBatch {
  hold: string;
  source: string;
  stream: string;
  tenure: string;
  firstOffset: number;
  nextOffset: number;
}

export interface SettleOutcome {
  rowsDropped: number;
  quarantineDropped: number;
}

const QUARANTINE_PART = '#quarantine';
const OFFSETS_PART = '';

export class SourceHolds {
  private readonly db: Database.Database;
  private readonly datasets: ReadonlyMap<string, Dataset>;
  private readonly onWatermarkLowered: (source: string, stream: string) => void;
  private readonly sequences: Database.Statement;
  private readonly upsert: Database.Statement;
  private readonly releaseThrough: Database.Statement;
  private readonly list: Database.Statement;
  private readonly partsOf: Database.Statement;
  private readonly lower: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly deleteQuarantine: Database.Statement;

  constructor(db: Database.Database, datasets: ReadonlyMap<string, Dataset>, onWatermarkLowered: (source: string, stream: string) => void) {
    this.db = db;
    this.datasets = datasets;
    this.onWatermarkLowered = onWatermarkLowered;
    this.sequences = db.prepare('SELECT name, seq FROM sqlite_sequence').raw();
    this.upsert = db.prepare(
      `INSERT INTO source_holds (hold, part, source, stream, tenure, first_offset, next_offset, first_id, last_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (hold, part) DO UPDATE SET
         first_offset = min(first_offset, excluded.first_offset), next_offset = max(next_offset, excluded.next_offset),
         first_id = min(first_id, excluded.first_id), last_id = max(last_id, excluded.last_id)`,
    );
    this.releaseThrough = db.prepare(
      `DELETE FROM source_holds WHERE hold IN
         (SELECT hold FROM source_holds WHERE part = '' AND source = ? AND stream = ? AND next_offset <= ?)`,
    );
    this.list = db.prepare(`SELECT hold, source, stream, tenure, first_offset, next_offset FROM source_holds WHERE part = '' ORDER BY source, stream, first_offset`);
    this.partsOf = db.prepare('SELECT part, source, stream, first_offset, first_id, last_id FROM source_holds WHERE hold = ?');
    this.lower = db.prepare('UPDATE source_offsets SET next_offset = min(next_offset, ?) WHERE source = ? AND stream = ?');
    this.remove = db.prepare('DELETE FROM source_holds WHERE hold = ?');
    this.deleteQuarantine = db.prepare('DELETE FROM quarantine WHERE id BETWEEN ? AND ?');
  }

  /** The AUTOINCREMENT sequences (table → last id), read before and after held items (row buffers flushed). */
  sequenceSnapshot(): Map<string, number> {
    return new Map(this.sequences.all() as [string, number][]);
  }

  /**
   * Records (or widens, for a batch written over several transactions) the hold of the
   * items written between two snapshots, inside the open transaction. `offsets` is
   * null when every item was a redelivery: nothing landed, nothing to hold.
   */
  record(span: HoldSpan, source: string, stream: string, offsets: { first: number; next: number } | null, before: Map<string, number>, after: Map<string, number>): void {
    if (offsets === null) return;
    const put = (part: string, firstId: number | null, lastId: number | null): void => {
      this.upsert.run(span.id, part, source, stream, span.tenure, offsets.first, offsets.next, firstId, lastId);
    };
    put(OFFSETS_PART, null, null);
    for (const [table, last] of after) {
      const first = (before.get(table) ?? 0) + 1;
      if (last < first) continue;
      if (table === 'quarantine') put(QUARANTINE_PART, first, last);
      else if (table.startsWith('landed_') && this.datasets.has(table.slice('landed_'.length))) put(table.slice('landed_'.length), first, last);
    }
  }

  /** The stream's holds up to `nextOffset` are committed: they go (no fsync of their own, see the header). */
  release(source: string, stream: string, nextOffset: number): number {
    this.db.pragma('synchronous = OFF');
    try {
      return this.releaseThrough.run(source, stream, nextOffset).changes;
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  held(source?: string): HeldBatch[] {
    const rows = this.list.all() as { hold: string; source: string; stream: string; tenure: string; first_offset: number; next_offset: number }[];
    return rows
      .filter((row) => source === undefined || row.source === source)
      .map((row) => ({ hold: row.hold, source: row.source, stream: row.stream, tenure: row.tenure, firstOffset: row.first_offset, nextOffset: row.next_offset }));
  }

  /** Settles holds in one durable transaction (see the header). Unknown hold ids are ignored. */
  settle(keep: readonly string[], drop: readonly string[]): SettleOutcome {
    const outcome: SettleOutcome = { rowsDropped: 0, quarantineDropped: 0 };
    const lowered: [string, string][] = [];
    this.db.transaction(() => {
      for (const hold of drop) {
        const parts = this.partsOf.all(hold) as { part: string; source: string; stream: string; first_offset: number; first_id: number | null; last_id: number | null }[];
        for (const part of parts) {
          if (part.part === OFFSETS_PART) {
            this.lower.run(part.first_offset, part.source, part.stream);
            lowered.push([part.source, part.stream]);
          } else if (part.part === QUARANTINE_PART) {
            outcome.quarantineDropped += this.deleteQuarantine.run(part.first_id, part.last_id).changes;
          } else {
            const dataset = this.datasets.get(part.part);
            if (dataset) outcome.rowsDropped += this.dropRows(dataset, part.first_id ?? 0, part.last_id ?? -1);
          }
        }
        this.remove.run(hold);
      }
      for (const hold of keep) this.remove.run(hold);
    }).immediate();
    for (const [source, stream] of lowered) this.onWatermarkLowered(source, stream);
    return outcome;
  }

  /** Deletes held rows first..last of the dataset, and their dedupe keys (inside the settle's transaction). */
  private dropRows(dataset: Dataset, first: number, last: number): number {
    const table = landedTable(dataset.name);
    // Held rows are never sealed (seal.ts); the watermark check only guards against a bug.
    const floor = Math.max(first, sealedThrough(this.db, dataset.name) + 1);
    if (dataset.dedupeKey) {
      const names = dataset.columns.map((c) => `"${c.name}"`).join(', ');
      const forget = this.db.prepare('DELETE FROM dedupe_keys WHERE dataset = ? AND key = ?');
      // One batch's rows: read whole (the connection cannot run the deletes while iterating).
      const rows = this.db.prepare(`SELECT ${names} FROM "${table}" WHERE id BETWEEN ? AND ?`).raw().all(floor, last) as RowValue[][];
      for (const row of rows) forget.run(dataset.name, dedupeKeyOfStored(dataset, row));
    }
    return this.db.prepare(`DELETE FROM "${table}" WHERE id BETWEEN ? AND ?`).run(floor, last).changes;
  }
}
